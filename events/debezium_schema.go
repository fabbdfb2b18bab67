package events

import (
	"fmt"
	"strconv"
)

// The {schema, payload} form of the Debezium encoding: the Kafka Connect
// schema of each record, written as Kafka Connect's JsonConverter writes
// one with schemas.enable=true, with the struct and logical type names
// Debezium's connectors give them.

// KeyEncoder is implemented by codecs that write the message key
// themselves: the Debezium encoding writes key columns in its column
// representations and, with schemas_enable, as {schema, payload}. Sinks
// whose messages have a key (Kafka) use it for events with a key.
type KeyEncoder interface {
	AppendKey(dst []byte, e *Event) ([]byte, error)
}

// dbzRecordName is the name Debezium gives a table's record schemas
// before ".Key", ".Value" and ".Envelope": <topic prefix>.<schema>.<table>
// for PostgreSQL, <topic prefix>.<database>.<table> for MySQL, the topic
// prefix being the logical server name (source.name).
func dbzRecordName(e *Event) string {
	src := e.Source
	if src == nil {
		src = &SourceInfo{}
	}
	server := orDefault(src.Name, orDefault(src.Connector, e.Stream))
	container := orDefault(src.Schema, e.NamespaceOr(""))
	if debeziumConnector(src.Connector) == "mysql" {
		container = orDefault(src.Database, container)
	}
	table := orDefault(src.Table, e.Stream)
	if container == "" {
		return server + "." + table
	}
	return server + "." + container + "." + table
}

// rowFields lists the field names and values of a row object in order.
func rowFields(row []byte) (names []string, vals [][]byte) {
	if isNull(row) {
		return nil, nil
	}
	_ = objectFields(row, func(k, v []byte) error {
		name, err := unquote(k)
		if err != nil {
			return err
		}
		names = append(names, name)
		vals = append(vals, v)
		return nil
	})
	return names, vals
}

// structColumns lists the fields of the struct schema for rows: the
// table's columns in table order, then fields no column describes
// (added by a transform, or all of them for a source without column
// types) with a schema read off their value. A column is optional when
// nullable, or when a row of this record lacks it (an old row under
// REPLICA IDENTITY DEFAULT carries only the key), since Kafka Connect's
// JsonConverter rejects a required field that is missing.
func structColumns(t *dbzTable, rows ...[]byte) (cols []*dbzColumn, optional []bool) {
	type rowSet struct {
		names map[string]bool
		order []string
		vals  [][]byte
	}
	var sets []rowSet
	for _, r := range rows {
		if isNull(r) {
			continue
		}
		names, vals := rowFields(r)
		m := make(map[string]bool, len(names))
		for _, n := range names {
			m[n] = true
		}
		sets = append(sets, rowSet{m, names, vals})
	}
	var seen map[string]bool
	if t != nil {
		seen = make(map[string]bool, len(t.cols))
		for _, col := range t.cols {
			opt := !col.notNull
			for _, s := range sets {
				opt = opt || !s.names[col.name]
			}
			cols = append(cols, col)
			optional = append(optional, opt)
			seen[col.name] = true
		}
	} else {
		seen = map[string]bool{}
	}
	for _, s := range sets {
		for i, name := range s.order {
			if seen[name] {
				continue
			}
			seen[name] = true
			v := s.vals[i]
			// Prefer a non-null value of the field to read its type off.
			for _, o := range sets {
				if isNull(v) {
					for j, n := range o.order {
						if n == name {
							v = o.vals[j]
						}
					}
				}
			}
			cols = append(cols, inferColumn(name, v))
			optional = append(optional, true)
		}
	}
	return cols, optional
}

// appendStructSchema writes a struct schema of cols without its closing
// brace, so that the caller adds "field" when it is a struct's field.
func appendStructSchema(dst []byte, cols []*dbzColumn, optional []bool, opt bool, name string) []byte {
	dst = append(dst, `{"type":"struct","fields":[`...)
	for i, col := range cols {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendFieldSchema(dst, col, optional[i], col.name)
	}
	dst = append(dst, `],"optional":`...)
	dst = strconv.AppendBool(dst, opt)
	if name != "" {
		dst = append(dst, `,"name":`...)
		dst = appendString(dst, name)
	}
	return dst
}

// Source block schemas, fields in the order appendDebeziumSource writes
// them, types as Debezium's source info struct makers declare them.
const (
	dbzSourceCommon = `{"type":"string","optional":false,"field":"version"},` +
		`{"type":"string","optional":false,"field":"connector"},` +
		`{"type":"string","optional":false,"field":"name"},` +
		`{"type":"int64","optional":false,"field":"ts_ms"},` +
		`{"type":"int64","optional":true,"field":"ts_us"},` +
		`{"type":"int64","optional":true,"field":"ts_ns"},` +
		`{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,` +
		`"parameters":{"allowed":"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},"default":"false","field":"snapshot"},` +
		`{"type":"string","optional":false,"field":"db"}`
	dbzSourcePostgres = `{"type":"struct","fields":[` + dbzSourceCommon + `,` +
		`{"type":"string","optional":true,"field":"sequence"},` +
		`{"type":"string","optional":false,"field":"schema"},` +
		`{"type":"string","optional":false,"field":"table"},` +
		`{"type":"int64","optional":true,"field":"txId"},` +
		`{"type":"int64","optional":true,"field":"lsn"},` +
		`{"type":"int64","optional":true,"field":"xmin"}` +
		`],"optional":false,"name":"io.debezium.connector.postgresql.Source","version":1,"field":"source"}`
	dbzSourceMySQL = `{"type":"struct","fields":[` + dbzSourceCommon + `,` +
		`{"type":"string","optional":true,"field":"table"},` +
		`{"type":"int64","optional":false,"field":"server_id"},` +
		`{"type":"string","optional":true,"field":"gtid"},` +
		`{"type":"string","optional":false,"field":"file"},` +
		`{"type":"int64","optional":false,"field":"pos"},` +
		`{"type":"int32","optional":false,"field":"row"},` +
		`{"type":"int64","optional":true,"field":"thread"},` +
		`{"type":"string","optional":true,"field":"query"}` +
		`],"optional":false,"name":"io.debezium.connector.mysql.Source","version":1,"field":"source"}`
	dbzSourceSQLServer = `{"type":"struct","fields":[` + dbzSourceCommon + `,` +
		`{"type":"string","optional":true,"field":"sequence"},` +
		`{"type":"string","optional":false,"field":"schema"},` +
		`{"type":"string","optional":false,"field":"table"},` +
		`{"type":"string","optional":true,"field":"change_lsn"},` +
		`{"type":"string","optional":true,"field":"commit_lsn"},` +
		`{"type":"int64","optional":true,"field":"event_serial_no"}` +
		`],"optional":false,"name":"io.debezium.connector.sqlserver.Source","version":1,"field":"source"}`
	dbzSourceOtherFields = `{"type":"string","optional":true,"field":"schema"},` +
		`{"type":"string","optional":false,"field":"table"},` +
		`{"type":"string","optional":true,"field":"position"}`
	dbzEnvelopeTail = `{"type":"string","optional":false,"field":"op"},` +
		`{"type":"int64","optional":true,"field":"ts_ms"},` +
		`{"type":"int64","optional":true,"field":"ts_us"},` +
		`{"type":"int64","optional":true,"field":"ts_ns"}`
)

// appendSourceSchema writes the schema of the source block e gets.
func appendSourceSchema(dst []byte, e *Event) []byte {
	conn := "rivven"
	if e.Source != nil {
		conn = debeziumConnector(e.Source.Connector)
	}
	switch conn {
	case "postgresql":
		return append(dst, dbzSourcePostgres...)
	case "mysql":
		return append(dst, dbzSourceMySQL...)
	case "sqlserver":
		return append(dst, dbzSourceSQLServer...)
	}
	dst = append(dst, `{"type":"struct","fields":[`+dbzSourceCommon+`,`+dbzSourceOtherFields+`],"optional":false,"name":`...)
	dst = appendString(dst, "io.debezium.connector."+conn+".Source")
	return append(dst, `,"version":1,"field":"source"}`...)
}

// appendEnvelopeSchema writes the schema of a change record: the
// envelope <prefix>.Envelope (version 2, as Debezium's) with before and
// after as <prefix>.Value, the source block, op, ts_* and the
// transaction block (declared whether or not it is written, as Debezium
// does).
func (c *debeziumCodec) appendEnvelopeSchema(dst []byte, e *Event, t *dbzTable, before, after []byte) []byte {
	name := dbzRecordName(e)
	cols, optional := structColumns(t, before, after)
	dst = append(dst, `{"type":"struct","fields":[`...)
	value := appendStructSchema(nil, cols, optional, true, name+".Value")
	dst = append(dst, value...)
	dst = append(dst, `,"field":"before"},`...)
	dst = append(dst, value...)
	dst = append(dst, `,"field":"after"},`...)
	dst = appendSourceSchema(dst, e)
	dst = append(dst, ',')
	dst = append(dst, dbzEnvelopeTail...)
	// Debezium declares total_order and data_collection_order required;
	// a change whose source did not count them (data_collection_order
	// needs the source's provide_transaction_metadata) says optional, so
	// that the record still reads.
	_, haveOrder := e.Metadata.Get(MetaCollectionOrder)
	dst = append(dst, `,{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":`...)
	dst = strconv.AppendBool(dst, e.Metadata.Sequence == nil)
	dst = append(dst, `,"field":"total_order"},{"type":"int64","optional":`...)
	dst = strconv.AppendBool(dst, !haveOrder)
	dst = append(dst, `,"field":"data_collection_order"}],"optional":true,"name":"event.block","version":1,"field":"transaction"}`...)
	dst = append(dst, `],"optional":false,"name":`...)
	dst = appendString(dst, name+".Envelope")
	return append(dst, `,"version":2}`...)
}

// AppendKey writes the key of e: its columns in the column
// representations, as {schema, payload} (schema <prefix>.Key) with
// schemas_enable.
func (c *debeziumCodec) AppendKey(dst []byte, e *Event) ([]byte, error) {
	if len(e.Key) == 0 || isNull(e.Key) {
		return dst, nil
	}
	n := len(dst)
	if IsTransactionBoundary(e) {
		// The transaction topic's key {id}.
		if !c.opts.SchemasEnable {
			return append(dst, e.Key...), nil
		}
		dst = append(dst, `{"schema":`+dbzTransactionKeySchema+`,"payload":`...)
		dst = append(dst, e.Key...)
		return append(dst, '}'), nil
	}
	t := c.table(e.Source)
	if e.Key[0] != '{' {
		return append(dst, e.Key...), nil // a scalar key: nothing to describe
	}
	if c.opts.SchemasEnable {
		names, _ := rowFields(e.Key)
		keyCols := make([]*dbzColumn, 0, len(names))
		optional := make([]bool, 0, len(names))
		all, opt := structColumns(t, e.Key)
		in := make(map[string]bool, len(names))
		for _, k := range names {
			in[k] = true
		}
		for i, col := range all {
			if in[col.name] {
				keyCols = append(keyCols, col)
				optional = append(optional, opt[i])
			}
		}
		dst = append(dst, `{"schema":`...)
		dst = appendStructSchema(dst, keyCols, optional, false, dbzRecordName(e)+".Key")
		dst = append(dst, `},"payload":`...)
	}
	var err error
	if dst, err = c.appendDBZRow(dst, e.Key, t); err != nil {
		return dst[:n], fmt.Errorf("key: %w", err)
	}
	if c.opts.SchemasEnable {
		dst = append(dst, '}')
	}
	return dst, nil
}
