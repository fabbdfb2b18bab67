package mysqlcdc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/metric"
)

// stream follows the binlog from start until ctx is done. A broken link is
// reconnected with exponential backoff from the last position handed to
// the pipeline, so nothing is skipped and nothing emitted twice. With inc,
// a resumed snapshot is read alongside and its chunks land in the stream.
func (s *Source) stream(ctx context.Context, emit connector.Emitter, start position, inc *incremental) error {
	rt := connector.RuntimeFrom(ctx)
	parent := ctx
	if inc != nil {
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := inc.read(ctx); err != nil {
				cancel(err)
			}
		}()
		// The reader is gone before Read returns: a next Read of this
		// source must not overlap it.
		defer func() {
			cancel(nil)
			<-done
		}()
	}
	m := &streamMetrics{
		events:       rt.Counter(metricEvents, "Change events emitted from the binlog."),
		transactions: rt.Counter(metricTransactions, "Binlog transactions processed."),
		lag:          rt.Gauge(metricLag, "Seconds between a binlog event's timestamp and its processing."),
		reconnects:   rt.Counter(metricReconnects, "Reconnects of the binlog stream."),
		schema:       rt.Counter(metricSchema, "DDL statements seen in the binlog."),
	}
	delay := time.Duration(s.cfg.RetryInitialMS) * time.Millisecond
	maxDelay := time.Duration(s.cfg.RetryMaxMS) * time.Millisecond
	last := start
	for {
		st := &streamer{src: s, emit: emit, m: m, start: last, inc: inc}
		err := st.run(ctx)
		if parent.Err() != nil {
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx) // the snapshot reader failed
		}
		if st.emitted {
			p, perr := parsePosition([]byte(st.lastPosition))
			if perr != nil {
				return connector.Fatal(perr)
			}
			last = *p
			delay = time.Duration(s.cfg.RetryInitialMS) * time.Millisecond
		}
		if err == nil || errors.Is(err, connector.ErrFatal) || st.emitErr {
			return err
		}
		var se *ServerError
		if errors.As(err, &se) && (se.Code == 1236 || se.Code == 1045 || se.Code == 1227) {
			// 1236: the position is gone or invalid; 1045/1227: access
			// denied. Reconnecting cannot fix either.
			return connector.Fatal(err)
		}
		m.reconnects.Inc()
		rt.Logger().Warn("binlog stream broke; reconnecting", "error", err, "retry_in", delay, "position", last.human())
		t := time.NewTimer(delay/2 + rand.N(delay/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(delay*2, maxDelay)
	}
}

type streamMetrics struct {
	events, transactions, reconnects, schema *metric.Counter
	lag                                      *metric.Gauge
}

// streamer is one connection's worth of streaming.
type streamer struct {
	src   *Source
	emit  connector.Emitter
	m     *streamMetrics
	start position

	c, meta    *conn
	dec        *decoder
	collations map[uint16]string
	tables     map[uint64]*tableInfo
	schemas    map[string]*tableSchema

	file     string
	boundary position
	bPrefix  string // encoded boundary up to the skip count
	bHuman   string
	bFilePos string // file:pos of the boundary: source.commit, for Debezium's source.file and pos
	gtid     gtidSet
	inTxn    bool
	explicit bool // the transaction began with BEGIN (or a non-standalone MariaDB GTID)
	txnRows  int
	// txCounts are the row changes of the transaction per table so far,
	// skipped ones included (provide_transaction_metadata).
	txCounts  []events.CollectionCount
	skip      int
	firstTxn  bool
	txnID     string
	pendMaria struct {
		domain, server uint32
		seq            uint64
		ok             bool
	}
	pendMySQL struct {
		uuid [16]byte
		gno  int64
		ok   bool
	}

	batch []*events.Event
	// serverIDJSON is the metadata value of serverID, kept while the
	// server id of the rows events stays the same.
	serverID     uint32
	serverIDJSON []byte
	posEnds      []int // scratch for rows: where each row's position ends
	slab         []events.Event
	// lastPosition is the encoded position of the last event handed to
	// the pipeline (decoded only when a reconnect needs it).
	lastPosition string
	emitted      bool
	emitErr      bool

	// inc is the snapshot read alongside (nil: none); reach is the end
	// of the last event read, where a chunk may land.
	inc   *incremental
	reach binlogPos
}

func (st *streamer) run(ctx context.Context) error {
	s := st.src
	var err error
	if st.meta, err = s.connect(ctx, false); err != nil {
		return err
	}
	defer st.meta.Close()
	if st.collations, err = loadCollations(st.meta); err != nil {
		return err
	}
	if st.c, err = s.connect(ctx, false); err != nil {
		return err
	}
	defer st.c.Close()
	stop := context.AfterFunc(ctx, func() { _ = st.c.Close() })
	defer stop()

	st.tables = map[uint64]*tableInfo{}
	st.schemas = map[string]*tableSchema{}
	st.boundary = position{File: st.start.File, Pos: st.start.Pos, GTID: st.start.GTID}
	st.file = st.start.File
	st.skip = st.start.Skip
	st.firstTxn = true
	if st.gtid, err = parseGTIDSet(st.start.GTID); err != nil {
		return connector.Fatal(err)
	}
	if st.inc != nil {
		st.reach = binlogPos{st.start.File, st.start.Pos}
		st.inc.mu.Lock()
		st.inc.st = st
		st.setBoundary(st.boundary)
		st.inc.mu.Unlock()
		defer func() {
			st.inc.mu.Lock()
			st.inc.st = nil
			st.inc.mu.Unlock()
		}()
	} else {
		st.setBoundary(st.boundary)
	}

	if err := st.startDump(); err != nil {
		return err
	}
	hb := time.Duration(s.cfg.HeartbeatIntervalSecs) * time.Second
	// Three missed heartbeats (plus slack) mean the link is dead; an idle
	// but healthy server sends one every hb.
	readTimeout := 3*hb + 2*time.Second
	nextDeadline := time.Time{}
	for {
		if now := time.Now(); now.After(nextDeadline) {
			_ = st.c.nc.SetReadDeadline(now.Add(readTimeout))
			nextDeadline = now.Add(time.Second)
		}
		pkt, err := st.c.readPacketReuse()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("no binlog event or heartbeat for %s: link considered dead", readTimeout)
			}
			if errors.Is(err, io.EOF) {
				return errors.New("server closed the binlog stream")
			}
			return err
		}
		if len(pkt) == 0 {
			return errors.New("empty binlog packet")
		}
		switch pkt[0] {
		case 0x00:
		case 0xff:
			return parseErrPacket(pkt)
		case 0xfe:
			return errors.New("server ended the binlog stream")
		default:
			return fmt.Errorf("unexpected binlog packet 0x%02x", pkt[0])
		}
		if st.inc != nil {
			st.inc.mu.Lock()
		}
		err = st.step(ctx, pkt[1:])
		if st.inc != nil {
			st.inc.mu.Unlock()
		}
		if err != nil {
			return err
		}
	}
}

// step handles one binlog event and hands the batch on when it is full
// or no further event is waiting.
func (st *streamer) step(ctx context.Context, raw []byte) error {
	if err := st.handle(ctx, raw); err != nil {
		return err
	}
	if len(st.batch) > 0 && (len(st.batch) >= st.src.cfg.MaxBatchSize || st.c.br.Buffered() == 0) {
		return st.flush(ctx)
	}
	return nil
}

// startDump configures the replication session and sends the dump command.
func (st *streamer) startDump() error {
	c, s := st.c, st.src
	res, err := c.query("SELECT @@global.binlog_checksum")
	if err != nil {
		return err
	}
	checksum := strings.EqualFold(string(res.Rows[0][0]), "CRC32")
	// Announce that we understand checksums, so the server sends them (we
	// verify every event's CRC32).
	// MySQL 8.0.26+ reads the source_ spellings, older servers and
	// MariaDB the master_ ones; user variables cost nothing to set twice.
	hbNanos := strconv.FormatInt(int64(s.cfg.HeartbeatIntervalSecs)*int64(time.Second), 10)
	for _, q := range []string{
		"SET @master_binlog_checksum = @@global.binlog_checksum",
		"SET @source_binlog_checksum = @@global.binlog_checksum",
		"SET @master_heartbeat_period = " + hbNanos,
		"SET @source_heartbeat_period = " + hbNanos,
	} {
		if err := c.exec(q); err != nil {
			return err
		}
	}
	st.dec = newDecoder(checksum)
	useGTID := s.cfg.UseGTID && st.start.GTID != ""
	if c.isMariaDB() {
		st.dec.mysqlJSON = false
		st.dec.mariaDB = true
		// 4 = MARIA_SLAVE_CAPABILITY_GTID: GTID events instead of BEGIN, and
		// the GTID connect state below is understood.
		if err := c.exec("SET @mariadb_slave_capability = 4"); err != nil {
			return err
		}
		if useGTID {
			for _, q := range []string{
				"SET @slave_connect_state = " + quoteString(st.start.GTID),
				"SET @slave_gtid_strict_mode = 0",
				"SET @slave_gtid_ignore_duplicates = 0",
			} {
				if err := c.exec(q); err != nil {
					return err
				}
			}
		}
	} else if useGTID && st.gtid.maria != nil {
		return connector.Fatal(fmt.Errorf("stored GTID %q is in MariaDB format but the server is MySQL %s", st.start.GTID, c.serverVersion))
	}
	if c.br.Buffered() == 0 {
		// From here on the connection carries the binlog: a large read
		// buffer means one read system call per 512 KiB of events instead
		// of per 64 KiB.
		c.br = bufio.NewReaderSize(c.nc, 512<<10)
	}
	host, _ := os.Hostname()
	if err := c.registerReplica(s.cfg.ServerID, host, 0); err != nil {
		return fmt.Errorf("registering as replica with server_id %d: %w", s.cfg.ServerID, err)
	}
	switch {
	case useGTID && !c.isMariaDB():
		return c.binlogDumpGTID(s.cfg.ServerID, st.gtid.sidBlock())
	case useGTID:
		return c.binlogDump(s.cfg.ServerID, "", 4)
	case st.start.File == "":
		return connector.Fatal(errors.New("no binlog file to start from (use_gtid is false but the position only has a GTID set)"))
	}
	return c.binlogDump(s.cfg.ServerID, st.start.File, st.start.Pos)
}

// setBoundary records a transaction boundary and precomputes the encoded
// position prefix the events of the next transaction share.
func (st *streamer) setBoundary(p position) {
	st.boundary = p
	b := position{File: p.File, Pos: p.Pos, GTID: p.GTID, Snap: st.incProgress()}
	enc := b.encode()
	st.bPrefix = enc[:len(enc)-1] // without the closing brace
	if st.bPrefix != "{" {
		st.bPrefix += ","
	}
	st.bHuman = b.human()
	// Where the transaction starts in the binlog, for Debezium's
	// source.file and source.pos even when positions are GTID sets.
	st.bFilePos = ""
	if p.File != "" {
		st.bFilePos = p.File + ":" + strconv.FormatUint(uint64(p.Pos), 10)
	}
}

// eventPosition is the encoded position of the skip-th row of the current
// transaction (rows builds the same text for all rows of an event at once).
func (st *streamer) eventPosition(skip int) string {
	b := make([]byte, 0, len(st.bPrefix)+16)
	b = append(b, st.bPrefix...)
	b = append(b, `"skip":`...)
	b = strconv.AppendInt(b, int64(skip), 10)
	return string(append(b, '}'))
}

var ddlTable = regexp.MustCompile("(?is)^(?:CREATE|ALTER|DROP|TRUNCATE|RENAME)\\s+(?:OR\\s+REPLACE\\s+)?(?:TEMPORARY\\s+)?(?:ONLINE\\s+|OFFLINE\\s+|IGNORE\\s+)?(?:TABLE\\s+)?(?:IF\\s+(?:NOT\\s+)?EXISTS\\s+)?((?:`(?:[^`]|``)+`|[\\w$]+)(?:\\s*\\.\\s*(?:`(?:[^`]|``)+`|[\\w$]+))?)")

// ddlTarget extracts the database and table a DDL statement names (the
// first one); ok is false when it names no table.
func ddlTarget(defaultDB, q string) (db, table string, ok bool) {
	q = strings.TrimSpace(stripComments(q))
	up := strings.ToUpper(q)
	if !strings.Contains(up, "TABLE") {
		return "", "", false
	}
	m := ddlTable.FindStringSubmatch(q)
	if m == nil {
		return "", "", false
	}
	parts := splitQualified(m[1])
	if len(parts) == 2 {
		return parts[0], parts[1], true
	}
	return defaultDB, parts[0], true
}

func splitQualified(s string) []string {
	var out []string
	for len(s) > 0 {
		s = strings.TrimSpace(s)
		if strings.HasPrefix(s, "`") {
			i := 1
			var sb strings.Builder
			for i < len(s) {
				if s[i] == '`' {
					if i+1 < len(s) && s[i+1] == '`' {
						sb.WriteByte('`')
						i += 2
						continue
					}
					break
				}
				sb.WriteByte(s[i])
				i++
			}
			out = append(out, sb.String())
			s = s[min(i+1, len(s)):]
		} else {
			j := strings.IndexByte(s, '.')
			if j < 0 {
				out = append(out, strings.TrimSpace(s))
				break
			}
			out = append(out, strings.TrimSpace(s[:j]))
			s = s[j:]
		}
		s = strings.TrimSpace(s)
		s = strings.TrimPrefix(s, ".")
	}
	return out
}

func (st *streamer) beginTxn(h header) {
	if st.inTxn {
		return
	}
	st.inTxn = true
	st.txnRows = 0
	st.txCounts = st.txCounts[:0]
	if h.LogPos >= h.Size && h.LogPos != 0 && st.file != "" {
		// The exact start of this transaction: a boundary (after a GTID
		// connect this is the first place we learn the file position).
		if st.boundary.File != st.file || st.boundary.Pos != h.LogPos-h.Size {
			st.setBoundary(position{File: st.file, Pos: h.LogPos - h.Size, GTID: st.boundary.GTID})
		}
	}
}

func (st *streamer) endTxn(h header) {
	switch {
	case st.pendMaria.ok:
		st.gtid.addMaria(st.pendMaria.domain, st.pendMaria.server, st.pendMaria.seq)
	case st.pendMySQL.ok:
		st.gtid.addMySQLRange(st.pendMySQL.uuid, st.pendMySQL.gno, st.pendMySQL.gno)
	}
	st.pendMaria.ok, st.pendMySQL.ok = false, false
	st.inTxn, st.explicit, st.txnRows = false, false, 0
	if st.firstTxn {
		st.firstTxn, st.skip = false, 0
	}
	st.setBoundary(position{File: st.file, Pos: h.LogPos, GTID: st.gtid.String()})
	if st.src.cfg.ProvideTransactionMetadata && len(st.txCounts) > 0 && !st.muted() {
		// After the commit: resuming from here starts with the next
		// transaction.
		st.batch = append(st.batch, st.txBoundary(true, time.Unix(int64(h.Timestamp), 0).UTC(), st.eventPosition(0)))
		st.txCounts = st.txCounts[:0]
	}
	st.m.transactions.Inc()
}

// txBoundary builds the BEGIN (end false) or END state event of the
// current transaction, with the changes counted so far.
func (st *streamer) txBoundary(end bool, at time.Time, pos string) *events.Event {
	id := orHuman(st.txnID, st.bHuman)
	var total uint64
	for _, c := range st.txCounts {
		total += c.Count
	}
	e := &events.Event{Type: events.State, Stream: "_state", Timestamp: at,
		Data: events.RawPayload(events.AppendTransactionRecord(nil, end, id, at, total, st.txCounts)),
		Key:  append(events.AppendJSONString([]byte(`{"id":`), id), '}'),
		Metadata: events.Metadata{Position: pos, TransactionID: st.txnID,
			Extra: []events.Field{{Key: events.MetaControl, Value: json.RawMessage(`"` + events.MetaControlTransaction + `"`)}}},
		Source: &events.SourceInfo{Connector: connectorName, Name: st.src.name, Database: st.src.cfg.Database, Position: st.bHuman, CommitTS: &at}}
	return e
}

// orHuman is the transaction's GTID, or where it starts without GTIDs.
func orHuman(gtid, human string) string {
	if gtid != "" {
		return gtid
	}
	return human
}

// countChange counts a row change of table (db.table) in the
// transaction: its number among the table's changes.
func (st *streamer) countChange(table string) uint64 {
	for i := range st.txCounts {
		if st.txCounts[i].Collection == table {
			st.txCounts[i].Count++
			return st.txCounts[i].Count
		}
	}
	st.txCounts = append(st.txCounts, events.CollectionCount{Collection: table, Count: 1})
	return 1
}

func (st *streamer) handle(ctx context.Context, raw []byte) error {
	h, body, err := st.dec.split(raw)
	if err != nil {
		return err
	}
	if h.Timestamp != 0 && h.Type != evHeartbeat {
		st.m.lag.Set(max(0, time.Since(time.Unix(int64(h.Timestamp), 0)).Seconds()))
	}
	if st.inc != nil {
		end := binlogPos{st.file, h.LogPos}
		defer func() {
			if h.Type == evRotate {
				end = binlogPos{st.file, 4}
			}
			st.advance(h.Type, end)
		}()
	}
	switch h.Type {
	case evFormatDescription:
		return st.dec.formatDescription(body)
	case evRotate:
		name, pos, err := rotate(body)
		if err != nil {
			return err
		}
		st.file = name
		if !st.inTxn && (h.LogPos != 0 || st.boundary.File == "") {
			st.setBoundary(position{File: name, Pos: uint32(pos), GTID: st.boundary.GTID})
		}
	case evHeartbeat:
		st.m.lag.Set(0)
	case evMariaGTID:
		seq, domain, standalone, err := parseMariaGTIDEvent(body)
		if err != nil {
			return err
		}
		st.beginTxn(h)
		st.explicit = !standalone
		st.pendMaria.domain, st.pendMaria.server, st.pendMaria.seq, st.pendMaria.ok = domain, h.ServerID, seq, true
		st.txnID = fmt.Sprintf("%d-%d-%d", domain, h.ServerID, seq)
	case evGTID:
		u, gno, err := parseMySQLGTIDEvent(body)
		if err != nil {
			return err
		}
		st.beginTxn(h)
		st.pendMySQL.uuid, st.pendMySQL.gno, st.pendMySQL.ok = u, gno, true
		st.txnID = formatUUID(u) + ":" + strconv.FormatInt(gno, 10)
	case evAnonymousGTID:
		st.beginTxn(h)
		st.txnID = ""
	case evQuery:
		qe, err := st.dec.query(body)
		if err != nil {
			return err
		}
		q := strings.TrimSpace(stripComments(qe.Query))
		switch strings.ToUpper(q) {
		case "BEGIN", "START TRANSACTION":
			if !st.inTxn {
				st.txnID = ""
			}
			st.beginTxn(h)
			st.explicit = true
			return nil
		case "COMMIT", "ROLLBACK":
			st.endTxn(h)
			return nil
		}
		if st.inTxn && st.explicit {
			return nil // SAVEPOINT and the like inside a transaction
		}
		if !st.inTxn {
			st.beginTxn(h)
		}
		if isDDL(q) {
			if err := st.ddl(h, qe); err != nil {
				return err
			}
		}
		st.endTxn(h)
	case evXID:
		st.endTxn(h)
	case evTableMap:
		tm, err := st.dec.tableMap(body)
		if err != nil {
			return err
		}
		return st.tableMap(tm)
	case evWriteRowsV1, evUpdateRowsV1, evDeleteRowsV1, evWriteRowsV2, evUpdateRowsV2, evDeleteRowsV2:
		rh, err := st.dec.rowsHeader(h.Type, body)
		if err != nil {
			return err
		}
		ti := st.tables[rh.TableID]
		if ti == nil {
			return fmt.Errorf("rows event for unknown table id %d", rh.TableID)
		}
		if !ti.captured {
			if ti.signal && st.inc != nil && !st.muted() && rh.Kind == rowsInsert {
				return st.signal(rh, ti)
			}
			return nil
		}
		if !st.inTxn {
			st.beginTxn(h)
		}
		return st.rows(h, rh, ti)
	case evMariaStartEncrypt:
		return connector.Fatal(errors.New("the binlog is encrypted (encrypt_binlog=ON): a replica connection receives it decrypted only from MariaDB itself; turn binlog encryption off for CDC"))
	case evMariaQueryCompressed, evMariaWriteRowsCompressed, evMariaWriteRowsCompressed + 1, evMariaWriteRowsCompressed + 2,
		evMariaWriteRowsCompressedV1, evMariaWriteRowsCompressedV1 + 1, evMariaDeleteRowsCompressedV1:
		return connector.Fatal(errors.New("compressed binlog events (log_bin_compress=ON) are not supported: set log_bin_compress=OFF"))
	case evTransactionPayload:
		return connector.Fatal(errors.New("compressed transaction payloads (binlog_transaction_compression=ON) are not supported: set binlog_transaction_compression=OFF"))
	case evPartialUpdateRows:
		return connector.Fatal(errors.New("partial JSON updates (binlog_row_value_options=PARTIAL_JSON) are not supported: set binlog_row_value_options=''"))
	}
	return nil
}

func (st *streamer) schemaFor(db, table string) (*tableSchema, error) {
	k := db + "." + table
	if ts, ok := st.schemas[k]; ok {
		return ts, nil
	}
	ts, err := loadTableSchema(st.meta, db, table)
	if err != nil {
		return nil, err
	}
	st.schemas[k] = ts
	return ts, nil
}

func (st *streamer) tableMap(tm *tableMap) error {
	if old := st.tables[tm.ID]; old != nil && old.db == tm.Schema && old.table == tm.Table &&
		string(old.tm.Types) == string(tm.Types) && len(old.tm.Meta) == len(tm.Meta) && (old.tm.Names != nil) == (tm.Names != nil) {
		same := true
		for i := range tm.Meta {
			same = same && old.tm.Meta[i] == tm.Meta[i]
		}
		for i := range tm.Names {
			same = same && old.tm.Names[i] == tm.Names[i]
		}
		if same {
			return nil
		}
	}
	captured := st.src.filter.captured(tm.Schema, tm.Table)
	signal := tm.Schema == st.src.cfg.Database && tm.Table == st.src.cfg.SignalTable
	var ts *tableSchema
	if (captured || signal) && (tm.Names == nil || tm.Unsigned == nil || tm.PK == nil || tm.Collation == nil || st.c.isMariaDB() && hasFixedString(tm)) {
		// Metadata incomplete (binlog_row_metadata=MINIMAL, or a table
		// without primary key), or a MariaDB fixed-length string column
		// that may be a UUID, INET4 or INET6 (the table map has no type
		// names): fill in from information_schema.
		var err error
		if ts, err = st.schemaFor(tm.Schema, tm.Table); err != nil {
			return err
		}
	}
	ti := buildTableInfo(tm, ts, st.collations)
	ti.captured, ti.signal = captured, signal
	if captured {
		if ts == nil {
			// Full table map metadata: information_schema only for the
			// column types of source.columns (cached per table).
			var err error
			if ts, err = st.schemaFor(tm.Schema, tm.Table); err != nil {
				return err
			}
		}
		if ts.describes(ti) {
			ti.columns = ts.columnTypes()
		}
	}
	st.tables[tm.ID] = ti
	return nil
}

// hasFixedString reports whether a table map has a CHAR/BINARY-typed
// column (as which MariaDB logs UUID, INET4 and INET6).
func hasFixedString(tm *tableMap) bool {
	for i, t := range tm.Types {
		if rt, _ := realType(t, tm.Meta[i]); rt == typeString {
			return true
		}
	}
	return false
}

func (st *streamer) rows(h header, rh rowsHeader, ti *tableInfo) error {
	changes, err := st.dec.decodeRows(rh, ti)
	if err != nil {
		return fmt.Errorf("decoding rows of %s.%s at %s:%d: %w", ti.db, ti.table, st.file, h.LogPos, err)
	}
	if st.inc != nil {
		st.inc.note(ti, changes, binlogPos{st.file, h.LogPos})
		if st.muted() {
			return nil
		}
	}
	ts := time.Unix(int64(h.Timestamp), 0).UTC()
	if h.ServerID != st.serverID || st.serverIDJSON == nil {
		st.serverID = h.ServerID
		st.serverIDJSON = []byte(strconv.FormatUint(uint64(h.ServerID), 10))
	}
	serverID := st.serverIDJSON
	// The positions of all rows of this event are written into one string
	// and each event gets a substring of it: one allocation per rows event
	// instead of one per row.
	var sb strings.Builder
	sb.Grow(len(changes) * (len(st.bPrefix) + len(`"skip":}`) + 6))
	ends := st.posEnds[:0]
	for i := range changes {
		sb.WriteString(st.bPrefix)
		sb.WriteString(`"skip":`)
		var tmp [20]byte
		sb.Write(strconv.AppendInt(tmp[:0], int64(st.txnRows+i+1), 10))
		sb.WriteByte('}')
		ends = append(ends, sb.Len())
	}
	st.posEnds = ends
	positions := sb.String() // no copy: the builder's buffer becomes the string
	// The events of one rows event share their source block (same table,
	// position and commit time) and their metadata field (same server).
	// Like an event's other pointers they are read-only downstream:
	// transforms copy the source block before changing it, and Extra is
	// capped at its length, so an append copies instead of touching a
	// neighbour.
	src := &events.SourceInfo{Connector: connectorName, Name: st.src.name, Database: ti.db, Table: ti.table, Position: st.bHuman, CommitTS: &ts, Columns: ti.columns, Commit: st.bFilePos}
	extra := []events.Field{{Key: "server_id", Value: serverID}} // len = cap = 1
	var typ events.Type
	switch rh.Kind {
	case rowsInsert:
		typ = events.Insert
	case rowsDelete:
		typ = events.Delete
	case rowsUpdate:
		typ = events.Update
	}
	var upd []byte // update payloads are carved from one buffer per rows event
	if rh.Kind == rowsUpdate {
		n := 0
		for _, rc := range changes {
			n += len(rc.Before) + len(rc.After) + 20
		}
		upd = make([]byte, 0, n)
	}
	start := 0
	meta := st.src.cfg.ProvideTransactionMetadata
	for i := range changes {
		rc := &changes[i]
		st.txnRows++
		pos := positions[start:ends[i]]
		start = ends[i]
		var order uint64
		if meta {
			order = st.countChange(ti.stream)
		}
		if st.firstTxn && st.txnRows <= st.skip {
			continue // emitted before the restart
		}
		if meta && order == 1 && len(st.txCounts) == 1 {
			// The transaction's first row change: BEGIN before it,
			// resuming at the transaction's start.
			st.batch = append(st.batch, st.txBoundary(false, ts, st.eventPosition(0)))
		}
		e := st.newEvent()
		e.Type = typ
		e.Stream = ti.stream
		e.Namespace = ti.ns
		e.Timestamp = ts
		e.Key = rc.Key
		e.Metadata.Position = pos
		e.Metadata.TransactionID = st.txnID
		e.Metadata.Extra = extra
		if meta {
			seq := uint64(st.txnRows)
			e.Metadata.Sequence = &seq
			e.Metadata.Extra = append(extra, events.Field{Key: events.MetaCollectionOrder, Value: json.RawMessage(strconv.FormatUint(order, 10))})
		}
		e.Source = src
		switch rh.Kind {
		case rowsInsert:
			e.Data = events.RawPayload(rc.After)
		case rowsDelete:
			e.Data = events.RawPayload(rc.Before)
		case rowsUpdate:
			s := len(upd)
			upd = append(upd, `{"before":`...)
			upd = append(upd, rc.Before...)
			upd = append(upd, `,"after":`...)
			upd = append(upd, rc.After...)
			upd = append(upd, '}')
			e.Data = events.RawPayload(upd[s:len(upd):len(upd)])
		}
		st.batch = append(st.batch, e)
	}
	return nil
}

// newEvent carves an event from a slab: one allocation per eventSlab
// events. The slab stays below the runtime's 32 KiB small-object limit,
// so its memory is recycled through the size-class caches instead of
// taking fresh pages from the heap for every rows event (which showed up
// as page-allocator and scavenger work).
func (st *streamer) newEvent() *events.Event {
	if len(st.slab) == 0 {
		st.slab = make([]events.Event, eventSlab)
	}
	e := &st.slab[0]
	st.slab = st.slab[1:]
	return e
}

// eventSlab events of about 250 bytes fit in 24 KiB (a size class well
// below the 32 KiB limit, which includes the runtime's type header).
const eventSlab = 24 << 10 / int(unsafe.Sizeof(events.Event{}))

// ddl refreshes the schema cache and emits a schema event (or a truncate
// event) for a DDL statement on a captured table.
func (st *streamer) ddl(h header, qe queryEvent) error {
	st.m.schema.Inc()
	db, table, ok := ddlTarget(qe.Schema, qe.Query)
	// Table ids are reassigned after DDL; drop cached schemas of the db.
	for k := range st.schemas {
		if strings.HasPrefix(k, qe.Schema+".") || (ok && strings.HasPrefix(k, db+".")) {
			delete(st.schemas, k)
		}
	}
	for id, ti := range st.tables {
		if ti.db == qe.Schema || (ok && ti.db == db) {
			delete(st.tables, id)
		}
	}
	if !ok {
		db = qe.Schema
	}
	if db != st.src.cfg.Database || (ok && !st.src.filter.captured(db, table)) {
		return nil
	}
	if st.inc != nil {
		if ok {
			st.inc.noteDDL(db, table, binlogPos{st.file, h.LogPos})
		}
		if st.muted() {
			return nil
		}
	}
	st.txnRows++
	if st.firstTxn && st.txnRows <= st.skip {
		return nil
	}
	var ts *tableSchema
	if ok {
		var err error
		if ts, err = loadTableSchema(st.meta, db, table); err != nil {
			return err
		}
	}
	p := position{File: st.boundary.File, Pos: st.boundary.Pos, GTID: st.boundary.GTID, Skip: st.txnRows, Snap: st.incProgress()}
	at := time.Unix(int64(h.Timestamp), 0).UTC()
	e := st.src.schemaEvent(db, table, qe.Query, ts, &p, at)
	e.Timestamp = at
	e.Metadata.TransactionID = st.txnID
	e.Metadata.Extra = []events.Field{{Key: "server_id", Value: []byte(strconv.FormatUint(uint64(h.ServerID), 10))}}
	if ok && strings.HasPrefix(strings.ToUpper(strings.TrimSpace(stripComments(qe.Query))), "TRUNCATE") {
		e.Type = events.Truncate
		e.Data = events.RawPayload([]byte(`{}`))
	}
	st.batch = append(st.batch, e)
	return nil
}

func (st *streamer) flush(ctx context.Context) error {
	if len(st.batch) == 0 {
		return nil
	}
	if err := st.emit.Emit(ctx, st.batch); err != nil {
		st.emitErr = true
		return err
	}
	st.lastPosition = st.batch[len(st.batch)-1].Metadata.Position
	st.emitted = true
	st.m.events.Add(uint64(len(st.batch)))
	st.batch = st.batch[:0]
	return nil
}

// incProgress is the progress of the snapshot read alongside, which every
// position carries while it runs (nil: none).
func (st *streamer) incProgress() *snapState {
	if st.inc == nil {
		return nil
	}
	return st.inc.prog
}

// muted reports whether the stream is reading what it emitted before a
// restart, to learn which rows it changed, without emitting it again.
func (st *streamer) muted() bool { return st.inc != nil && st.inc.mute != nil }
