package mysqlcdc

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/metric"
)

// snapshot reads the captured tables in one consistent read view, chunked
// by primary key, and returns the binlog position the view corresponds to
// (streaming starts there, so the handoff loses and repeats nothing).
//
// resume, when set, is a stored mid-snapshot position: its File/Pos/GTID is
// the original snapshot's binlog position (streaming must still start
// there, or changes to rows emitted before the crash would be lost) and its
// Snap says which table and key to continue after. The rest is read in a
// new read view, so rows changed since the first view appear with their
// newer state and the binlog replay from the original position then
// re-applies those changes: nothing is lost, some changes arrive twice.
func (s *Source) snapshot(ctx context.Context, emit connector.Emitter, resume *position) (*position, error) {
	rt := connector.RuntimeFrom(ctx)
	c, err := s.connect(ctx, false)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()

	for _, q := range []string{
		"SET SESSION time_zone = '+00:00'",
		"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
	} {
		if err := c.exec(q); err != nil {
			return nil, fmt.Errorf("%s: %w", q, err)
		}
	}
	start, err := beginSnapshot(c)
	if err != nil {
		return nil, err
	}
	var st snapState
	if resume != nil && resume.Snap != nil {
		start = &position{File: resume.File, Pos: resume.Pos, GTID: resume.GTID}
		st = *resume.Snap
		rt.Logger().Info("resuming snapshot", "table_index", st.Index, "tables", len(st.Tables), "stream_from", start.human())
	} else {
		tables, err := listTables(c, s.cfg.Database)
		if err != nil {
			return nil, err
		}
		for _, t := range tables {
			if s.filter.captured(s.cfg.Database, t) && s.filter.snapshotted(s.cfg.Database, t) {
				st.Tables = append(st.Tables, t)
			}
		}
		rt.Logger().Info("starting snapshot", "tables", len(st.Tables), "stream_from", start.human())
	}
	sid, err := c.query("SELECT @@server_id")
	if err != nil {
		return nil, err
	}
	s.snapServerID = append([]byte(nil), sid.Rows[0][0]...)
	rows := rt.Counter(metricSnapshotRows, "Rows read by the snapshot.")
	for ; st.Index < len(st.Tables); st.Index, st.After, st.Done = st.Index+1, nil, 0 {
		if err := s.snapshotTable(ctx, c, emit, start, &st, rows); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
	}
	_ = c.exec("COMMIT")
	s.mu.Lock()
	s.snapshotted = true
	s.mu.Unlock()
	rt.Logger().Info("snapshot finished", "tables", len(st.Tables))
	return start, nil
}

// beginSnapshot opens the consistent read view and returns its binlog
// position. MariaDB reports the position of the view itself
// (binlog_snapshot_file/position) without any lock; MySQL needs a short
// global read lock so the position read matches the view.
func beginSnapshot(c *conn) (*position, error) {
	if c.isMariaDB() {
		if err := c.exec("START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
			return nil, err
		}
		res, err := c.query("SHOW STATUS LIKE 'binlog_snapshot_%'")
		if err != nil {
			return nil, err
		}
		p := &position{}
		for _, r := range res.Rows {
			switch strings.ToLower(string(r[0])) {
			case "binlog_snapshot_file":
				p.File = string(r[1])
			case "binlog_snapshot_position":
				n, err := atoiBytes(r[1])
				if err != nil {
					return nil, fmt.Errorf("binlog_snapshot_position %q: %w", r[1], err)
				}
				p.Pos = uint32(n)
			}
		}
		if p.File == "" {
			return nil, connector.Fatal(errors.New("the server reports no binlog snapshot position: binary logging is off (set log_bin)"))
		}
		g, err := c.query("SELECT BINLOG_GTID_POS(" + quoteString(p.File) + ", " + strconv.FormatUint(uint64(p.Pos), 10) + ")")
		if err != nil {
			return nil, err
		}
		if len(g.Rows) > 0 && g.Rows[0][0] != nil {
			p.GTID = string(g.Rows[0][0])
		}
		return p, nil
	}
	if err := c.exec("FLUSH TABLES WITH READ LOCK"); err != nil {
		return nil, fmt.Errorf("FLUSH TABLES WITH READ LOCK (needs the RELOAD privilege): %w", err)
	}
	p, err := func() (*position, error) {
		if err := c.exec("START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
			return nil, err
		}
		return currentPosition(c)
	}()
	if uerr := c.exec("UNLOCK TABLES"); uerr != nil && err == nil {
		err = uerr
	}
	return p, err
}

func tableEstimate(c *conn, db, table string) int64 {
	res, err := c.query(fmt.Sprintf("SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", quoteString(db), quoteString(table)))
	if err != nil || len(res.Rows) == 0 || res.Rows[0][0] == nil {
		return -1
	}
	n, err := strconv.ParseInt(string(res.Rows[0][0]), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

func (s *Source) snapshotTable(ctx context.Context, c *conn, emit connector.Emitter, start *position, st *snapState, rowsCounter *metric.Counter) error {
	rt := connector.RuntimeFrom(ctx)
	db, table := s.cfg.Database, st.Tables[st.Index]
	task := db + "." + table
	ts, err := loadTableSchema(c, db, table)
	if err != nil {
		return err
	}
	if ts == nil {
		rt.Logger().Warn("table disappeared before the snapshot read it", "table", task)
		return nil
	}
	columns := ts.columnTypes()
	var filePos string // source.commit: the binlog position the snapshot is consistent with
	if start.File != "" {
		filePos = start.File + ":" + strconv.FormatUint(uint64(start.Pos), 10)
	}
	estimate := tableEstimate(c, db, table)
	rt.Progress(task, st.Done, estimate)
	defer rt.Done(task)

	batch := s.cfg.snapshotBatch()
	for {
		if len(ts.PK) == 0 && (st.After != nil || st.Done > 0) {
			// Without a key there is no place to continue: read the table again.
			st.Done = 0
		}
		q, err := chunkQuery(ts, st.After, batch)
		if err != nil {
			return err
		}
		res, err := c.query(q)
		if err != nil {
			return fmt.Errorf("snapshot of %s: %w", task, err)
		}
		if len(res.Rows) == 0 {
			return nil
		}
		now := time.Now().UTC()
		out := make([]*events.Event, 0, len(res.Rows))
		for _, row := range res.Rows {
			e, after, err := s.readEvent(ts, row, columns, filePos, now)
			if err != nil {
				return fmt.Errorf("snapshot of %s: %w", task, err)
			}
			st.Done++
			p := position{File: start.File, Pos: start.Pos, GTID: start.GTID, Snap: &snapState{Tables: st.Tables, Index: st.Index, After: after, Done: st.Done}}
			e.Metadata.Position = p.encode()
			e.Source.Position = start.human()
			out = append(out, e)
			st.After = after
		}
		if err := emit.Emit(ctx, out); err != nil {
			return err
		}
		rowsCounter.Add(uint64(len(out)))
		rt.Progress(task, st.Done, estimate)
		if len(ts.PK) == 0 || len(res.Rows) < batch {
			return nil
		}
	}
}

// chunkQuery selects the chunk of batch rows after the key after (nil:
// from the start) in key order; a table without a key is one chunk.
func chunkQuery(ts *tableSchema, after []string, batch int) (string, error) {
	sel := make([]string, len(ts.Cols))
	for i, col := range ts.Cols {
		sel[i] = quoteIdent(col.Name)
		if col.Kind == kFloat {
			// FLOAT prints with 6 significant digits; as DOUBLE it prints
			// the exact float32 value, which the binlog also carries.
			// (+ 0E0 rather than CAST AS DOUBLE, which MySQL < 8.0.17 lacks)
			sel[i] = "(" + quoteIdent(col.Name) + " + 0E0)"
		}
	}
	q := "SELECT " + strings.Join(sel, ", ") + " FROM " + quoteIdent(ts.DB) + "." + quoteIdent(ts.Table)
	if len(ts.PK) == 0 {
		return q, nil
	}
	if after != nil {
		where, err := keysetWhere(ts, after)
		if err != nil {
			return "", err
		}
		q += " WHERE " + where
	}
	order := make([]string, len(ts.PK))
	for i, k := range ts.PK {
		order[i] = quoteIdent(ts.Cols[k].Name)
	}
	return q + " ORDER BY " + strings.Join(order, ", ") + " LIMIT " + strconv.Itoa(batch), nil
}

// readEvent is the snapshot-read event of one row of a chunk (text
// protocol cells), without its position, and the row's key as stored in
// a snapshot position (hex of each key column's text; nil without a key).
func (s *Source) readEvent(ts *tableSchema, row [][]byte, columns, filePos string, now time.Time) (*events.Event, []string, error) {
	obj := make([]byte, 0, 256)
	obj = append(obj, '{')
	var err error
	for i, cell := range row {
		if i > 0 {
			obj = append(obj, ',')
		}
		obj = events.AppendJSONString(obj, ts.Cols[i].Name)
		obj = append(obj, ':')
		if obj, err = appendTextValue(obj, &ts.Cols[i], cell); err != nil {
			return nil, nil, err
		}
	}
	obj = append(obj, '}')
	var key []byte
	var after []string
	if len(ts.PK) > 0 {
		after = make([]string, 0, len(ts.PK))
		key = append(key, '{')
		for j, k := range ts.PK {
			if j > 0 {
				key = append(key, ',')
			}
			key = events.AppendJSONString(key, ts.Cols[k].Name)
			key = append(key, ':')
			key, _ = appendTextValue(key, &ts.Cols[k], row[k])
			after = append(after, hex.EncodeToString(row[k]))
		}
		key = append(key, '}')
	}
	ns, commit := ts.DB, now
	return &events.Event{
		Type:      events.SnapshotRead,
		Stream:    ts.DB + "." + ts.Table,
		Namespace: &ns,
		Timestamp: now,
		Data:      events.RawPayload(obj),
		Key:       key,
		Metadata:  events.Metadata{Extra: []events.Field{{Key: "server_id", Value: s.snapServerID}}},
		Source:    &events.SourceInfo{Connector: connectorName, Name: s.name, Database: ts.DB, Table: ts.Table, CommitTS: &commit, Snapshot: true, Columns: columns, Commit: filePos},
	}, after, nil
}

// keysetWhere is the condition for rows after the given primary key:
// (a > x) OR (a = x AND b > y) OR ...
func keysetWhere(ts *tableSchema, after []string) (string, error) {
	if len(after) != len(ts.PK) {
		return "", connector.Fatal(fmt.Errorf("stored snapshot key has %d columns, table %s.%s has %d primary key columns (the table changed; delete the stored position to snapshot again)", len(after), ts.DB, ts.Table, len(ts.PK)))
	}
	lits := make([]string, len(after))
	for i, h := range after {
		raw, err := hex.DecodeString(h)
		if err != nil {
			return "", connector.Fatal(fmt.Errorf("stored snapshot key is corrupt: %w", err))
		}
		lits[i] = sqlLiteral(&ts.Cols[ts.PK[i]], raw)
	}
	var ors []string
	for i := range ts.PK {
		var ands []string
		for j := range i {
			ands = append(ands, quoteIdent(ts.Cols[ts.PK[j]].Name)+" = "+lits[j])
		}
		ands = append(ands, quoteIdent(ts.Cols[ts.PK[i]].Name)+" > "+lits[i])
		ors = append(ors, "("+strings.Join(ands, " AND ")+")")
	}
	return strings.Join(ors, " OR "), nil
}

// sqlLiteral renders a text-protocol value back as a literal: numbers as
// they are (after checking they are numbers), binary values as hex, all
// else as a utf8mb4 hex string the server converts to the column's type.
func sqlLiteral(ci *colInfo, raw []byte) string {
	switch ci.Kind {
	case kInt, kUint, kDecimal, kYear, kDouble:
		if _, err := strconv.ParseFloat(string(raw), 64); err == nil {
			return string(raw)
		}
	case kBytes, kBit:
		return "X'" + hex.EncodeToString(raw) + "'"
	}
	if len(raw) == 0 {
		return "''"
	}
	return "_utf8mb4 X'" + hex.EncodeToString(raw) + "'"
}
