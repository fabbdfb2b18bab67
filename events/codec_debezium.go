package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ---- Debezium envelope (encoding) ------------------------------------------

// debeziumCodec encodes the Debezium change envelope {before, after,
// source, op, ts_ms, ts_us, ts_ns[, transaction]} as Debezium's
// PostgreSQL and MySQL connectors write it with schemas.enable=false, and
// decodes it with or without the {schema, payload} wrapper.
type debeziumCodec struct {
	opts   DebeziumOptions
	skip   skipSet
	now    func() time.Time // processing time (top-level ts_ms); a clock in tests
	tables tableCache
	topics bool // the sink writes diverted records (ForTopics)
}

// Debezium is the Debezium codec with Debezium's default options.
var Debezium Codec = &debeziumCodec{opts: DefaultDebeziumOptions(), skip: 8, now: time.Now}

// debeziumVersion is what source.version says: not a Debezium release, so
// a consumer that checks it can tell.
const debeziumVersion = "rivven-connect"

func (*debeziumCodec) Name() string        { return CodecDebezium }
func (*debeziumCodec) ContentType() string { return "application/json" }

// Tombstone: a delete is followed by a tombstone unless
// tombstones_on_delete is off or deletes are skipped.
func (c *debeziumCodec) Tombstone(e *Event) bool {
	return e.Type == Delete && c.opts.TombstonesOnDelete && !c.skip.has("d")
}

// Divert sends schema events to schema_changes_topic when one is set.
func (c *debeziumCodec) Divert(e *Event) (string, bool) {
	if e.Type == Schema && c.opts.SchemaChangesTopic != "" {
		return c.opts.SchemaChangesTopic, true
	}
	if IsTransactionBoundary(e) && c.opts.ProvideTransactionMetadata && c.topics {
		return c.transactionTopic(e), true
	}
	return "", false
}

// transactionTopic is where e's BEGIN/END record goes: transaction_topic,
// or <server>.transaction as Debezium names it.
func (c *debeziumCodec) transactionTopic(e *Event) string {
	if c.opts.TransactionTopic != "" {
		return c.opts.TransactionTopic
	}
	server := e.Stream
	if e.Source != nil {
		server = orDefault(e.Source.Name, orDefault(e.Source.Connector, e.Stream))
	}
	return server + ".transaction"
}

func (c *debeziumCodec) Append(dst []byte, e *Event) ([]byte, error) {
	if IsTransactionBoundary(e) {
		if !c.opts.ProvideTransactionMetadata || !c.topics {
			// Never in the data stream: Debezium writes them to a
			// topic of their own.
			return dst, ErrSkipped
		}
		return c.appendTransactionRecord(dst, e)
	}
	op := e.Type.Op()
	switch {
	case op == "s":
		if c.opts.SchemaChangesTopic == "" {
			// Debezium's PostgreSQL connector writes no schema change
			// records, and Flink's debezium-json rejects a record
			// without op: never put one into the data stream.
			return dst, ErrSkipped
		}
		return c.appendSchemaChange(dst, e)
	case op == "":
		return dst, fmt.Errorf("a Debezium envelope cannot carry %s events", e.Type)
	case c.skip.has(op):
		return dst, ErrSkipped
	}
	var before, after []byte
	var err error
	switch e.Type {
	case Insert, Record, SnapshotRead:
		if after, err = e.Data.JSON(); err != nil {
			return dst, err
		}
	case Delete:
		if before, err = e.Data.JSON(); err != nil {
			return dst, err
		}
	case Update:
		var data []byte
		if data, err = e.Data.JSON(); err != nil {
			return dst, err
		}
		err = objectFields(data, func(k, v []byte) error {
			switch {
			case keyIs(k, "before"):
				before = v
			case keyIs(k, "after"):
				after = v
			}
			return nil
		})
		if err != nil {
			return dst, fmt.Errorf("update data: %w", err)
		}
	}
	n := len(dst)
	t := c.table(e.Source)
	if c.opts.SchemasEnable {
		dst = append(dst, `{"schema":`...)
		dst = c.appendEnvelopeSchema(dst, e, t, before, after)
		dst = append(dst, `,"payload":`...)
	}
	dst = append(dst, `{"before":`...)
	if dst, err = c.appendDBZRow(dst, before, t); err != nil {
		return dst[:n], fmt.Errorf("before: %w", err)
	}
	dst = append(dst, `,"after":`...)
	if dst, err = c.appendDBZRow(dst, after, t); err != nil {
		return dst[:n], fmt.Errorf("after: %w", err)
	}
	dst = append(dst, `,"source":`...)
	dst = appendDebeziumSource(dst, e)
	dst = append(dst, `,"op":"`...)
	dst = append(dst, op...)
	dst = append(dst, '"')
	dst = appendDebeziumTimes(dst, c.now())
	if c.opts.ProvideTransactionMetadata && op != "r" && e.Metadata.TransactionID != "" {
		dst = appendDebeziumTransaction(dst, e)
	}
	dst = append(dst, '}')
	if c.opts.SchemasEnable {
		dst = append(dst, '}')
	}
	return dst, nil
}

// appendDebeziumTimes writes ,"ts_ms":..,"ts_us":..,"ts_ns":.. for t.
func appendDebeziumTimes(dst []byte, t time.Time) []byte {
	dst = append(dst, `,"ts_ms":`...)
	dst = strconv.AppendInt(dst, t.UnixMilli(), 10)
	dst = append(dst, `,"ts_us":`...)
	dst = strconv.AppendInt(dst, t.UnixMicro(), 10)
	dst = append(dst, `,"ts_ns":`...)
	return strconv.AppendInt(dst, t.UnixNano(), 10)
}

// appendDebeziumTransaction writes Debezium's transaction block: the
// transaction id in Debezium's "<txId>:<commit position>" form, the
// change's index within the transaction and within its table's changes
// of the transaction.
func appendDebeziumTransaction(dst []byte, e *Event) []byte {
	dst = append(dst, `,"transaction":{"id":`...)
	commit := ""
	if e.Source != nil && debeziumConnector(e.Source.Connector) == "postgresql" {
		commit = e.Source.Commit // MySQL's transaction id is the GTID alone
	}
	dst = appendString(dst, DebeziumTransactionID(e.Metadata.TransactionID, commit))
	if e.Metadata.Sequence != nil {
		dst = append(dst, `,"total_order":`...)
		dst = strconv.AppendUint(dst, *e.Metadata.Sequence, 10)
	}
	if v, ok := e.Metadata.Get(MetaCollectionOrder); ok && len(v) > 0 {
		dst = append(dst, `,"data_collection_order":`...)
		dst = append(dst, v...)
	}
	return append(dst, '}')
}

// DebeziumTransactionID is the transaction id of Debezium's transaction
// block and BEGIN/END records: "<txId>:<commit position>", a PostgreSQL
// LSN in decimal as Debezium writes it.
func DebeziumTransactionID(txID, commit string) string {
	if commit == "" {
		return txID
	}
	if lsn, ok := parseLSN(commit); ok {
		commit = strconv.FormatUint(lsn, 10)
	}
	return txID + ":" + commit
}

// MetaCollectionOrder is the metadata key a CDC source puts a change's
// index among its table's changes of the same transaction under
// (Debezium's transaction.data_collection_order).
const MetaCollectionOrder = "data_collection_order"

// debeziumConnector is Debezium's name for the connector of a source.
func debeziumConnector(c string) string {
	switch c {
	case "postgres-cdc":
		return "postgresql"
	case "mysql-cdc", "mariadb-cdc":
		return "mysql"
	case "sqlserver-cdc":
		return "sqlserver"
	case "":
		return "rivven"
	}
	return c
}

// snapshotMark is source.snapshot: "true" for snapshot rows ("last" when
// the source marked the last one), "false" otherwise.
func snapshotMark(e *Event) string {
	if v, ok := e.Metadata.Get(MetaSnapshot); ok && len(v) > 2 && v[0] == '"' {
		if s, err := unquote(v); err == nil && s != "false" {
			return s
		}
	}
	if e.Type == SnapshotRead || e.Source != nil && e.Source.Snapshot {
		return "true"
	}
	return "false"
}

// appendDebeziumSource writes the source block with the fields, field
// order and types the Debezium connector of the same database writes:
// PostgreSQL's sequence, txId, lsn and xmin; MySQL's server_id, gtid,
// file and pos; SQL Server's change_lsn, commit_lsn and event_serial_no.
// ts_* are the commit time.
func appendDebeziumSource(dst []byte, e *Event) []byte {
	src := e.Source
	if src == nil {
		src = &SourceInfo{}
	}
	conn := debeziumConnector(src.Connector)
	dst = append(dst, `{"version":"`+debeziumVersion+`","connector":`...)
	dst = appendString(dst, conn)
	dst = append(dst, `,"name":`...)
	dst = appendString(dst, orDefault(src.Name, orDefault(src.Connector, e.Stream)))
	ts := e.Timestamp
	if src.CommitTS != nil {
		ts = *src.CommitTS
	}
	dst = appendDebeziumTimes(dst, ts)
	dst = append(dst, `,"snapshot":`...)
	dst = appendString(dst, snapshotMark(e))
	dst = append(dst, `,"db":`...)
	dst = appendString(dst, src.Database)
	switch conn {
	case "postgresql":
		lsn, haveLSN := parseLSN(src.Position)
		dst = append(dst, `,"sequence":`...)
		seq := []byte{'['}
		if last, ok := parseLSN(src.LastCommit); ok {
			seq = append(seq, '"')
			seq = strconv.AppendUint(seq, last, 10)
			seq = append(seq, '"')
		} else {
			seq = append(seq, "null"...)
		}
		seq = append(seq, ',')
		if haveLSN {
			seq = append(seq, '"')
			seq = strconv.AppendUint(seq, lsn, 10)
			seq = append(seq, '"')
		} else {
			seq = append(seq, "null"...)
		}
		dst = appendString(dst, string(append(seq, ']')))
		dst = append(dst, `,"schema":`...)
		dst = appendString(dst, orDefault(src.Schema, e.NamespaceOr("")))
		dst = append(dst, `,"table":`...)
		dst = appendString(dst, orDefault(src.Table, e.Stream))
		dst = append(dst, `,"txId":`...)
		if tx, err := strconv.ParseUint(e.Metadata.TransactionID, 10, 64); err == nil {
			dst = strconv.AppendUint(dst, tx, 10)
		} else {
			dst = append(dst, "null"...)
		}
		dst = append(dst, `,"lsn":`...)
		if haveLSN {
			dst = strconv.AppendUint(dst, lsn, 10)
		} else {
			dst = append(dst, "null"...)
		}
		dst = append(dst, `,"xmin":null`...)
	case "mysql":
		dst = append(dst, `,"table":`...)
		dst = appendString(dst, orDefault(src.Table, e.Stream))
		dst = append(dst, `,"server_id":`...)
		if v, ok := e.Metadata.Get("server_id"); ok && isUint(v) {
			dst = append(dst, v...)
		} else {
			dst = append(dst, '0')
		}
		// The transaction's GTID (Debezium's gtid), not the executed set.
		dst = append(dst, `,"gtid":`...)
		if strings.Contains(e.Metadata.TransactionID, ":") || strings.Count(e.Metadata.TransactionID, "-") == 2 {
			dst = appendString(dst, e.Metadata.TransactionID)
		} else {
			dst = append(dst, "null"...)
		}
		file, pos := binlogFilePos(src)
		dst = append(dst, `,"file":`...)
		dst = appendString(dst, file)
		dst = append(dst, `,"pos":`...)
		dst = strconv.AppendUint(dst, pos, 10)
		dst = append(dst, `,"row":`...)
		dst = strconv.AppendUint(dst, rowInTransaction(e), 10)
		dst = append(dst, `,"thread":null,"query":null`...)
	case "sqlserver":
		dst = append(dst, `,"sequence":null,"schema":`...)
		dst = appendString(dst, orDefault(src.Schema, e.NamespaceOr("")))
		dst = append(dst, `,"table":`...)
		dst = appendString(dst, orDefault(src.Table, e.Stream))
		dst = appendSQLServerLSNs(dst, e, src)
	default:
		if schema := orDefault(src.Schema, e.NamespaceOr("")); schema != "" {
			dst = append(dst, `,"schema":`...)
			dst = appendString(dst, schema)
		}
		dst = append(dst, `,"table":`...)
		dst = appendString(dst, orDefault(src.Table, e.Stream))
		if pos := orDefault(src.Position, e.Metadata.Position); pos != "" {
			dst = append(dst, `,"position":`...)
			dst = appendString(dst, pos)
		}
	}
	return append(dst, '}')
}

// appendSQLServerLSNs writes change_lsn, commit_lsn and event_serial_no as
// Debezium's SQL Server connector does: LSNs in its 00000027:00000758:0003
// form, commit_lsn the transaction's __$start_lsn (source.commit),
// change_lsn the row's __$seqval (the second half of the sqlserver-cdc
// position "0x<start_lsn>:0x<seqval>"), event_serial_no 2 for an update
// (made from the change table's second row, as Debezium numbers it), else
// 1. A snapshot row has only the commit_lsn it was read at.
func appendSQLServerLSNs(dst []byte, e *Event, src *SourceInfo) []byte {
	change := ""
	if _, seq, ok := strings.Cut(src.Position, ":"); ok {
		change = debeziumLSN(seq)
	}
	dst = append(dst, `,"change_lsn":`...)
	dst = appendStringOrNull(dst, change)
	dst = append(dst, `,"commit_lsn":`...)
	dst = appendStringOrNull(dst, debeziumLSN(src.Commit))
	dst = append(dst, `,"event_serial_no":`...)
	switch {
	case change == "":
		return append(dst, "null"...)
	case e.Type == Update:
		return append(dst, '2')
	}
	return append(dst, '1')
}

// debeziumLSN spells a 10-byte SQL Server LSN written as 0x<20 hex digits>
// the way Debezium's Lsn.toString does, or "" if it is not one.
func debeziumLSN(s string) string {
	h, ok := strings.CutPrefix(s, "0x")
	if !ok || len(h) != 20 {
		return ""
	}
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return ""
		}
	}
	h = strings.ToLower(h)
	return h[:8] + ":" + h[8:16] + ":" + h[16:]
}

func appendStringOrNull(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, "null"...)
	}
	return appendString(dst, s)
}

func isUint(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// binlogFilePos finds the binlog file and position of a MySQL change: the
// transaction's start (source.commit) when it is a file:pos, else the
// source position when that is one.
func binlogFilePos(src *SourceInfo) (string, uint64) {
	for _, p := range [...]string{src.Commit, src.Position} {
		if file, pos, ok := strings.Cut(p, ":"); ok && strings.Contains(file, ".") {
			if n, err := strconv.ParseUint(pos, 10, 64); err == nil {
				return file, n
			}
		}
	}
	return "", 0
}

// rowInTransaction is the 0-based index of a change within its
// transaction (metadata.sequence is 1-based).
func rowInTransaction(e *Event) uint64 {
	if e.Metadata.Sequence != nil && *e.Metadata.Sequence > 0 {
		return *e.Metadata.Sequence - 1
	}
	return 0
}

// appendSchemaChange renders a schema event as a record of Debezium's
// schema change topic: {source, ts_ms, databaseName, schemaName, ddl,
// tableChanges: [{type, id, table: {primaryKeyColumnNames, columns:
// [{name, jdbcType, typeName, typeExpression, position, optional}]}}]},
// built from the columns the CDC source reported.
func (c *debeziumCodec) appendSchemaChange(dst []byte, e *Event) ([]byte, error) {
	raw, err := e.Data.JSON()
	if err != nil {
		return dst, err
	}
	var body struct {
		Schema     string   `json:"schema"`
		Database   string   `json:"database"`
		Table      string   `json:"table"`
		DDL        string   `json:"ddl"`
		Dropped    bool     `json:"dropped"`
		PrimaryKey []string `json:"primary_key"`
		Columns    []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Key        bool   `json:"key"`
			PrimaryKey bool   `json:"primary_key"`
			Nullable   *bool  `json:"nullable"`
		} `json:"columns"`
	}
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &body); err != nil {
			return dst, fmt.Errorf("schema event data: %w", err)
		}
	}
	src := e.Source
	if src == nil {
		src = &SourceInfo{}
	}
	db := orDefault(src.Database, body.Database)
	schema := orDefault(src.Schema, body.Schema)
	table := orDefault(src.Table, body.Table)
	dst = append(dst, `{"source":`...)
	dst = appendDebeziumSource(dst, e)
	dst = append(dst, `,"ts_ms":`...)
	dst = strconv.AppendInt(dst, c.now().UnixMilli(), 10)
	dst = append(dst, `,"databaseName":`...)
	dst = appendString(dst, db)
	dst = append(dst, `,"schemaName":`...)
	if schema != "" {
		dst = appendString(dst, schema)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"ddl":`...)
	if body.DDL != "" {
		dst = appendString(dst, body.DDL)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"tableChanges":[`...)
	if table != "" {
		kind := "ALTER"
		switch {
		case body.Dropped:
			kind = "DROP"
		case strings.HasPrefix(strings.ToUpper(strings.TrimSpace(body.DDL)), "CREATE"):
			kind = "CREATE"
		}
		id := `"` + table + `"`
		if schema != "" {
			id = `"` + schema + `".` + id
		} else if db != "" {
			id = `"` + db + `".` + id
		}
		dst = append(dst, `{"type":"`+kind+`","id":`...)
		dst = appendString(dst, id)
		dst = append(dst, `,"table":`...)
		if body.Dropped {
			dst = append(dst, "null"...)
		} else {
			pk := body.PrimaryKey
			if pk == nil {
				for _, col := range body.Columns {
					if col.Key || col.PrimaryKey {
						pk = append(pk, col.Name)
					}
				}
			}
			dst = append(dst, `{"defaultCharsetName":null,"primaryKeyColumnNames":[`...)
			for i, k := range pk {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = appendString(dst, k)
			}
			dst = append(dst, `],"columns":[`...)
			for i, col := range body.Columns {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = append(dst, `{"name":`...)
				dst = appendString(dst, col.Name)
				dst = append(dst, `,"jdbcType":`...)
				dst = strconv.AppendInt(dst, int64(jdbcType(col.Type)), 10)
				base := col.Type
				if j := strings.IndexAny(base, "("); j > 0 {
					base = strings.TrimSpace(base[:j])
				}
				dst = append(dst, `,"typeName":`...)
				dst = appendString(dst, strings.ToUpper(base))
				dst = append(dst, `,"typeExpression":`...)
				dst = appendString(dst, strings.ToUpper(col.Type))
				dst = append(dst, `,"position":`...)
				dst = strconv.AppendInt(dst, int64(i+1), 10)
				dst = append(dst, `,"optional":`...)
				optional := col.Nullable == nil || *col.Nullable
				dst = strconv.AppendBool(dst, optional && !(col.Key || col.PrimaryKey))
				dst = append(dst, '}')
			}
			dst = append(dst, "]}"...)
		}
		dst = append(dst, '}')
	}
	return append(dst, "]}"...), nil
}

// jdbcType maps a database type name to its java.sql.Types code, the
// number Debezium's schema change records carry as jdbcType.
func jdbcType(t string) int {
	t = strings.ToLower(strings.TrimSpace(t))
	if strings.HasSuffix(t, "[]") {
		return 2003 // ARRAY
	}
	if i := strings.IndexAny(t, "( "); i > 0 && !strings.HasPrefix(t, "timestamp") && !strings.HasPrefix(t, "time ") && !strings.HasPrefix(t, "double") && !strings.HasPrefix(t, "character varying") && !strings.HasPrefix(t, "bit varying") {
		t = t[:i]
	}
	switch {
	case t == "smallint" || t == "int2" || t == "tinyint" || t == "smallserial":
		return 5 // SMALLINT
	case t == "integer" || t == "int" || t == "int4" || t == "serial" || t == "mediumint":
		return 4 // INTEGER
	case t == "bigint" || t == "int8" || t == "bigserial":
		return -5 // BIGINT
	case t == "numeric" || t == "decimal":
		return 2 // NUMERIC
	case t == "real" || t == "float4" || t == "float":
		return 7 // REAL
	case strings.HasPrefix(t, "double") || t == "float8":
		return 8 // DOUBLE
	case t == "boolean" || t == "bool":
		return 16 // BOOLEAN
	case t == "bit":
		return -7 // BIT
	case strings.HasPrefix(t, "character varying") || t == "varchar" || t == "text" || t == "json" || t == "jsonb" || t == "uuid" || strings.HasSuffix(t, "text"):
		return 12 // VARCHAR
	case t == "character" || t == "char" || t == "bpchar":
		return 1 // CHAR
	case t == "date":
		return 91 // DATE
	case strings.HasPrefix(t, "time with time zone") || t == "timetz":
		return 2013 // TIME_WITH_TIMEZONE
	case strings.HasPrefix(t, "time"):
		if strings.Contains(t, "with time zone") || t == "timestamptz" {
			return 2014 // TIMESTAMP_WITH_TIMEZONE
		}
		if strings.HasPrefix(t, "timestamp") || t == "datetime" {
			return 93 // TIMESTAMP
		}
		return 92 // TIME
	case t == "datetime":
		return 93
	case t == "bytea" || strings.HasSuffix(t, "blob") || t == "binary" || t == "varbinary":
		return -2 // BINARY
	}
	return 1111 // OTHER
}

// Transaction boundaries: with provide_transaction_metadata a CDC source
// sends a BEGIN before the first change of a transaction and an END after
// its last one, as state events (metadata.control "transaction") whose
// data is Debezium's transaction record {status, id, ts_ms, event_count,
// data_collections}.

// MetaControlTransaction is metadata.control of a transaction boundary.
const MetaControlTransaction = "transaction"

// IsTransactionBoundary reports whether e is a BEGIN or END record.
func IsTransactionBoundary(e *Event) bool {
	if e.Type != State {
		return false
	}
	v, ok := e.Metadata.Get(MetaControl)
	return ok && string(v) == `"`+MetaControlTransaction+`"`
}

// CollectionCount is one entry of an END record's data_collections.
type CollectionCount struct {
	Collection string
	Count      uint64
}

// AppendTransactionRecord writes the data of a transaction boundary as
// Debezium's TransactionMetadataValue: status BEGIN (event_count and
// data_collections null) or END with the counts, id "<txId>:<commit
// position>", ts_ms the commit time.
func AppendTransactionRecord(dst []byte, end bool, id string, ts time.Time, count uint64, collections []CollectionCount) []byte {
	if end {
		dst = append(dst, `{"status":"END","id":`...)
	} else {
		dst = append(dst, `{"status":"BEGIN","id":`...)
	}
	dst = appendString(dst, id)
	dst = append(dst, `,"event_count":`...)
	if !end {
		dst = append(dst, `null,"data_collections":null`...)
	} else {
		dst = strconv.AppendUint(dst, count, 10)
		dst = append(dst, `,"data_collections":[`...)
		for i, cc := range collections {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"data_collection":`...)
			dst = appendString(dst, cc.Collection)
			dst = append(dst, `,"event_count":`...)
			dst = strconv.AppendUint(dst, cc.Count, 10)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"ts_ms":`...)
	dst = strconv.AppendInt(dst, ts.UnixMilli(), 10)
	return append(dst, '}')
}

// Schemas of the transaction topic's records, as Debezium's SchemaFactory
// builds them.
const (
	dbzTransactionValueSchema = `{"type":"struct","fields":[{"type":"string","optional":false,"field":"status"},` +
		`{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":true,"field":"event_count"},` +
		`{"type":"array","items":{"type":"struct","fields":[{"type":"string","optional":false,"field":"data_collection"},` +
		`{"type":"int64","optional":false,"field":"event_count"}],"optional":true,"name":"event.collection","version":1},"optional":true,"field":"data_collections"},` +
		`{"type":"int64","optional":false,"field":"ts_ms"}],"optional":false,"name":"io.debezium.connector.common.TransactionMetadataValue","version":1}`
	dbzTransactionKeySchema = `{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"}],` +
		`"optional":false,"name":"io.debezium.connector.common.TransactionMetadataKey","version":1}`
)

// appendTransactionRecord writes a BEGIN/END record: the data the source
// built, in the {schema, payload} wrapper under schemas_enable.
func (c *debeziumCodec) appendTransactionRecord(dst []byte, e *Event) ([]byte, error) {
	raw, err := e.Data.JSON()
	if err != nil {
		return dst, err
	}
	if !c.opts.SchemasEnable {
		return append(dst, raw...), nil
	}
	dst = append(dst, `{"schema":`+dbzTransactionValueSchema+`,"payload":`...)
	dst = append(dst, raw...)
	return append(dst, '}'), nil
}
