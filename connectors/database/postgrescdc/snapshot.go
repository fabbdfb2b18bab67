package postgrescdc

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
)

// snapTable is a table being snapshotted, with the columns read.
type snapTable struct {
	t       *table
	cols    []column // selected columns (column_filters applied)
	keyIdx  []int    // positions of the primary key columns in cols
	keyOIDs []uint32
	columns string // source.columns of its events (see columnTypes)
}

// chunk is what a snapshot reader hands the emitting goroutine: one
// page of a table, rendered, without positions (those depend on the
// progress of every table, which only the emitting goroutine knows).
type chunk struct {
	st    *snapTable
	first bool // first chunk read by this run: emit the schema event
	evs   []*events.Event
	pks   [][]*string // text of the key columns per row; nil for keyless tables
	done  bool        // the table has no rows after this chunk
	err   error
}

// snapshot copies the captured tables that the snapshot covers and are
// not done in st, emitting SnapshotRead events. exported is the slot's
// exported snapshot to import ("" = take a new REPEATABLE READ snapshot,
// after a restart or on an existing slot). lsn is where streaming starts
// afterwards; it goes into every position.
func (s *Source) snapshot(ctx context.Context, emit connector.Emitter, types *typeCache, tables []*table, lsn pglogrepl.LSN, st *snapState, exported string) error {
	rt := connector.RuntimeFrom(ctx)
	log := rt.Logger()
	done := map[string]bool{}
	for _, d := range st.Done {
		done[d] = true
	}
	var todo []*snapTable
	for _, t := range tables {
		if done[t.fullName()] || !s.snapshotted(t) {
			continue
		}
		todo = append(todo, s.snapTable(t))
	}
	if len(todo) == 0 {
		return nil
	}
	workers := min(s.cfg.Snapshot.ParallelTables, len(todo))
	log.Info("postgres-cdc: snapshot starting", "tables", len(todo), "parallel", workers, "exported_snapshot", exported != "", "resumed", len(st.Done)+len(st.At) > 0)

	// Open every reader and import the snapshot before reading anything:
	// an exported snapshot can only be imported while the replication
	// connection that exported it is still idle.
	conns := make([]*pgx.Conn, 0, workers)
	defer func() {
		for _, c := range conns {
			_ = c.Close(context.WithoutCancel(ctx))
		}
	}()
	for range workers {
		c, err := s.connect(ctx)
		if err != nil {
			return err
		}
		conns = append(conns, c)
		if _, err := c.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
			return fmt.Errorf("snapshot: begin: %w", err)
		}
		if exported == "" {
			// No slot snapshot to share (resume, existing slot,
			// initial_only): the first reader exports its own, so that all
			// readers still see one consistent state.
			if err := c.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&exported); err != nil {
				return fmt.Errorf("snapshot: export snapshot: %w", err)
			}
			continue
		}
		if _, err := c.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+exported+"'"); err != nil {
			return fmt.Errorf("snapshot: import exported snapshot: %w", err)
		}
	}

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan *snapTable, len(todo))
	for _, t := range todo {
		jobs <- t
	}
	close(jobs)
	out := make(chan chunk, workers)
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func(c *pgx.Conn) {
			defer wg.Done()
			for t := range jobs {
				if !s.readTable(rctx, c, types, t, st.At[t.t.fullName()], out) {
					return
				}
			}
		}(c)
	}
	go func() { wg.Wait(); close(out) }()

	// The emitting side: one goroutine calls Emit, in chunk order.
	snapRows := rt.Counter(metricSnapshotRows, "Rows read by snapshots.")
	counts := map[string]int64{}
	started := time.Now().UTC()
	for ch := range out {
		if ch.err != nil {
			cancel()
			for range out { // let the readers finish
			}
			if ctx.Err() != nil {
				return nil
			}
			return ch.err
		}
		name := ch.st.t.fullName()
		batch := make([]*events.Event, 0, len(ch.evs)+1)
		lsnText := lsnString(lsn)
		if ch.first {
			batch = append(batch, s.schemaEvent(ch.st.t, snapshotPosition(lsn, st), lsnText, started))
		}
		prefix := snapPrefix(lsn, st, name)
		for i, e := range ch.evs {
			if ch.pks != nil {
				e.Metadata.Position = prefix + pkJSON(ch.pks[i]) + "}}}"
			} else {
				e.Metadata.Position = prefix + "[]}}}"
			}
			e.Source.Position = lsnText
			batch = append(batch, e)
		}
		if ch.done {
			delete(st.At, name)
			st.Done = append(st.Done, name)
			pos := snapshotPosition(lsn, st)
			if len(batch) > 0 {
				batch[len(batch)-1].Metadata.Position = pos
			}
		} else if n := len(ch.evs); n > 0 {
			if ch.pks != nil {
				st.At[name] = ch.pks[n-1]
			} else {
				st.At[name] = []*string{}
			}
		}
		if len(batch) > 0 {
			if err := emit.Emit(ctx, batch); err != nil {
				cancel()
				for range out {
				}
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		snapRows.Add(uint64(len(ch.evs)))
		counts[name] += int64(len(ch.evs))
		if ch.done {
			rt.Progress(name, counts[name], max(ch.st.t.Estimate, counts[name]))
			rt.Done(name)
			log.Info("postgres-cdc: snapshot of table done", "table", name, "rows", counts[name])
		} else {
			rt.Progress(name, counts[name], ch.st.t.Estimate)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	log.Info("postgres-cdc: snapshot complete", "tables", len(todo))
	return nil
}

func (s *Source) snapTable(t *table) *snapTable {
	st := &snapTable{t: t}
	pk := map[string]int{}
	for i, k := range t.PK {
		pk[k] = i
	}
	st.keyIdx = make([]int, len(t.PK))
	st.keyOIDs = make([]uint32, len(t.PK))
	for _, c := range t.Columns {
		i, isKey := pk[c.Name]
		if !s.keepColumn(t.fullName(), c.Name, isKey) {
			continue
		}
		if isKey {
			st.keyIdx[i] = len(st.cols)
			st.keyOIDs[i] = c.OID
		}
		st.cols = append(st.cols, c)
	}
	types := make([]events.Column, len(st.cols))
	for i, c := range st.cols {
		types[i] = events.Column{Name: c.Name, Type: c.Type, NotNull: !c.Nullable}
	}
	st.columns = string(events.AppendColumns(nil, types))
	return st
}

// readTable reads one table in primary-key order, BatchSize rows per
// query, starting after the key after (nil: from the start; an empty key
// for keyless tables means start over). It returns false when reading
// must stop (error sent, or ctx done).
func (s *Source) readTable(ctx context.Context, c *pgx.Conn, types *typeCache, st *snapTable, after []*string, out chan<- chunk) bool {
	send := func(ch chunk) bool {
		select {
		case out <- ch:
			return ch.err == nil
		case <-ctx.Done():
			return false
		}
	}
	colList := make([]string, len(st.cols))
	for i, col := range st.cols {
		colList[i] = quoteIdent(col.Name)
	}
	sel := "SELECT " + strings.Join(colList, ", ") + " FROM " + st.t.quoted()
	first := true
	if len(st.t.PK) == 0 {
		// No key to page by: one query, cut into chunks. A restart reads
		// the table again from the start.
		return s.readRows(ctx, c, types, st, sel, nil, nil, &first, send, true)
	}
	keys := make([]string, len(st.t.PK))
	params := make([]string, len(st.t.PK))
	for i, k := range st.t.PK {
		keys[i] = quoteIdent(k)
		params[i] = "$" + strconv.Itoa(i+1)
	}
	// One row more than a chunk: when it comes back the table goes on,
	// otherwise this chunk is the last and its last row's position can
	// say so (the extra row is read again as the next chunk's first).
	order := " ORDER BY " + strings.Join(keys, ", ") + " LIMIT " + strconv.Itoa(s.cfg.Snapshot.BatchSize+1)
	from := sel + " WHERE (" + strings.Join(keys, ", ") + ") > (" + strings.Join(params, ", ") + ")" + order
	if len(after) != len(st.t.PK) {
		after = nil
	}
	for {
		q := sel + order
		var args [][]byte
		if after != nil {
			q = from
			args = make([][]byte, len(after))
			for i, a := range after {
				if a == nil {
					return send(chunk{err: fmt.Errorf("snapshot of %s: resume key has a NULL column", st.t.fullName())})
				}
				args[i] = []byte(*a)
			}
		}
		var last []*string
		ok := s.readRows(ctx, c, types, st, q, args, &last, &first, send, false)
		if !ok {
			return false
		}
		if last == nil { // the page was short: table done
			return true
		}
		after = last
	}
}

// readRows runs one query and sends its rows as chunks of at most
// BatchSize. Paged (whole=false) queries ask for BatchSize+1 rows and
// send BatchSize: *last is set to the last key sent when the extra row
// came back (more follow); otherwise the chunk carries done. Whole-table queries send several chunks.
func (s *Source) readRows(ctx context.Context, c *pgx.Conn, types *typeCache, st *snapTable, q string, args [][]byte, last *[]*string, first *bool, send func(chunk) bool, whole bool) bool {
	var oids []uint32
	if args != nil {
		oids = st.keyOIDs
	}
	rr := c.PgConn().ExecParams(ctx, q, args, oids, nil, nil)
	batch := s.cfg.Snapshot.BatchSize
	ch := chunk{st: st, first: *first}
	keyed := len(st.keyIdx) > 0
	buf := make([]byte, 0, 256)
	for rr.NextRow() {
		vals := rr.Values()
		buf = appendRow(buf[:0], types, st.cols, vals)
		e := s.newEvent(events.SnapshotRead, st.t.Schema, st.t.Name, time.Now().UTC(), nil, true)
		e.Source.Columns = st.columns
		e.Data = events.RawPayload(append([]byte(nil), buf...))
		if keyed {
			e.Key = appendKey(nil, types, st.cols, st.keyIdx, vals)
			pk := make([]*string, len(st.keyIdx))
			for i, idx := range st.keyIdx {
				if vals[idx] != nil {
					v := string(vals[idx])
					pk[i] = &v
				}
			}
			ch.pks = append(ch.pks, pk)
		}
		ch.evs = append(ch.evs, e)
		if whole && len(ch.evs) >= batch {
			if !send(ch) {
				rr.Close()
				return false
			}
			*first = false
			ch = chunk{st: st}
		}
	}
	if _, err := rr.Close(); err != nil {
		if ctx.Err() != nil {
			return false
		}
		send(chunk{err: fmt.Errorf("snapshot of %s: %w", st.t.fullName(), err)})
		return false
	}
	if !whole && len(ch.evs) > batch {
		ch.evs, ch.pks = ch.evs[:batch], ch.pks[:batch]
		*last = ch.pks[batch-1]
	} else {
		ch.done = true
	}
	*first = false
	return send(ch)
}

// appendRow renders a row as a JSON object, columns in table order.
func appendRow(dst []byte, types *typeCache, cols []column, vals [][]byte) []byte {
	dst = append(dst, '{')
	for i, col := range cols {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = events.AppendJSONString(dst, col.Name)
		dst = append(dst, ':')
		if vals[i] == nil {
			dst = append(dst, "null"...)
			continue
		}
		dst = types.appendValue(dst, col.OID, vals[i])
	}
	return append(dst, '}')
}

func appendKey(dst []byte, types *typeCache, cols []column, keyIdx []int, vals [][]byte) []byte {
	dst = append(dst, '{')
	for i, idx := range keyIdx {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = events.AppendJSONString(dst, cols[idx].Name)
		dst = append(dst, ':')
		if vals[idx] == nil {
			dst = append(dst, "null"...)
		} else {
			dst = types.appendValue(dst, cols[idx].OID, vals[idx])
		}
	}
	return append(dst, '}')
}

// snapPrefix renders a snapshot position up to the value of table's "at"
// entry, so that each row only appends its key.
func snapPrefix(lsn pglogrepl.LSN, st *snapState, table string) string {
	return progressPrefix(lsn, "snapshot", st, table)
}

// progressPrefix renders {"lsn":…,"<kind>":{"since":{…},"done":[…],"at":{…,"<table>":
// — a position with snapshot progress, open at table's "at" entry.
func progressPrefix(lsn pglogrepl.LSN, kind string, st *snapState, table string) string {
	var b strings.Builder
	b.WriteString(`{"lsn":"`)
	b.WriteString(lsnString(lsn))
	b.WriteString(`","` + kind + `":{`)
	if len(st.Since) > 0 {
		b.WriteString(`"since":{`)
		first := true
		for k, v := range st.Since {
			if !first {
				b.WriteByte(',')
			}
			first = false
			b.Write(events.AppendJSONString(nil, k))
			b.WriteByte(':')
			b.Write(events.AppendJSONString(nil, v))
		}
		b.WriteString(`},`)
	}
	b.WriteString(`"done":`)
	writeStrings(&b, st.Done)
	b.WriteString(`,"at":{`)
	for k, v := range st.At {
		if k == table {
			continue
		}
		b.Write(events.AppendJSONString(nil, k))
		b.WriteByte(':')
		b.WriteString(pkJSON(v))
		b.WriteByte(',')
	}
	b.Write(events.AppendJSONString(nil, table))
	b.WriteByte(':')
	return b.String()
}

func writeStrings(b *strings.Builder, ss []string) {
	b.WriteByte('[')
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(events.AppendJSONString(nil, s))
	}
	b.WriteByte(']')
}

func pkJSON(pk []*string) string {
	b := []byte{'['}
	for i, v := range pk {
		if i > 0 {
			b = append(b, ',')
		}
		if v == nil {
			b = append(b, "null"...)
		} else {
			b = events.AppendJSONString(b, *v)
		}
	}
	return string(append(b, ']'))
}
