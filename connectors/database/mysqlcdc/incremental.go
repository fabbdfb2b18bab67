package mysqlcdc

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/metric"
)

// incremental is a snapshot resumed after a crash, read chunk by chunk
// alongside the stream with watermarks (the DBLog algorithm, as Debezium's
// incremental snapshots do), instead of in a new read view whose rows the
// replayed binlog would then repeat or contradict.
//
// Streaming starts at the stored stream position as always. For each chunk
// the reader notes the binlog position before it (low), opens a read view
// and notes the position of that view (high: on MariaDB the view's own
// position, binlog_snapshot_file/position, so low and high bracket it
// exactly; on MySQL the end of the binlog right after the view opened),
// reads the chunk and hands it over. The stream emits the chunk at the
// first transaction boundary at or after high, so no change the view
// contains follows the chunk, and it leaves out every row whose key the
// stream has already delivered a change for since the snapshot began
// (Snap.From): that change carries the row's newer or equal state, so a
// row arrives either through its changes or as a snapshot read, never
// both, and a read never follows a newer change of its row.
//
// The set of changed keys is rebuilt after each restart by reading the
// binlog from Snap.From up to the stored position without emitting
// (mute), so it holds across any number of crashes.
type incremental struct {
	s    *Source
	rows *metric.Counter
	log  *slog.Logger

	// mu is held by the streamer while it handles an event and by the
	// reader while it hands a chunk over, so the chunk lands between two
	// events of the stream.
	mu sync.Mutex
	// prog is the snapshot's progress after the last chunk emitted (nil
	// once the snapshot is complete); replaced, never changed in place,
	// as events keep pointers to it until their positions are encoded.
	prog    *snapState
	pending *chunk
	st      *streamer // the streamer running now (nil between connections)
	// mute is where emitting starts again after a restart: the stored
	// position, reached by reading from prog.From (nil: not muted).
	mute *position
	// tables are the tables still to be read; changed the keys each has
	// had a change of since prog.From; touched where a table without a
	// key last changed and ddl where each last had DDL.
	tables  map[string]bool
	changed map[string]map[string]struct{}
	touched map[string]binlogPos
	ddl     map[string]binlogPos
	// wake tells the reader a signal queued tables.
	wake chan struct{}
}

// chunk is one chunk read in its own read view.
type chunk struct {
	table     string
	ts        *tableSchema // nil: the table is gone
	low, high binlogPos
	evs       []*events.Event
	afters    [][]string
	last      bool // the table's last chunk
	done      chan bool
}

// newIncremental prepares the reading alongside the stream of what prog
// has left (nil: nothing until a signal asks for tables).
func newIncremental(ctx context.Context, s *Source, prog *snapState) *incremental {
	rt := connector.RuntimeFrom(ctx)
	inc := &incremental{s: s, rows: rt.Counter(metricSnapshotRows, "Rows read by the snapshot."), log: rt.Logger(), prog: prog, tables: map[string]bool{},
		changed: map[string]map[string]struct{}{}, touched: map[string]binlogPos{}, ddl: map[string]binlogPos{}, wake: make(chan struct{}, 1)}
	if prog == nil {
		return inc
	}
	for _, t := range prog.Tables[min(prog.Index, len(prog.Tables)):] {
		inc.tables[t] = true
	}
	if prog.Index >= len(prog.Tables) {
		inc.prog = nil
	}
	return inc
}

// binlogPos is a place in the binlog.
type binlogPos struct {
	file string
	pos  uint32
}

// cmpBinlogPos orders places in the binlog: files by their sequence
// number (name.000042), then offsets.
func cmpBinlogPos(a, b binlogPos) int {
	if a.file != b.file {
		if c := cmp.Compare(fileSeq(a.file), fileSeq(b.file)); c != 0 {
			return c
		}
		return strings.Compare(a.file, b.file)
	}
	return cmp.Compare(a.pos, b.pos)
}

func fileSeq(name string) int64 {
	n, err := strconv.ParseInt(name[strings.LastIndexByte(name, '.')+1:], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// resumeAlongside prepares the snapshot stored in pos to continue
// alongside the stream and returns where streaming starts.
func (s *Source) resumeAlongside(ctx context.Context, pos *position) (*incremental, position, error) {
	log := connector.RuntimeFrom(ctx).Logger()
	prog := *pos.Snap
	start := position{File: pos.File, Pos: pos.Pos, GTID: pos.GTID, Skip: pos.Skip}
	if prog.From == nil {
		// Stored by the initial snapshot: its position is where the
		// stream starts.
		prog.From = &position{File: pos.File, Pos: pos.Pos, GTID: pos.GTID}
	}
	inc := newIncremental(ctx, s, &prog)
	from := *prog.From
	if from.File == start.File && from.Pos == start.Pos && from.GTID == start.GTID {
		log.Info("mysql-cdc: resuming the snapshot alongside the stream", "table_index", prog.Index, "tables", len(prog.Tables), "stream_from", start.human())
		return inc, start, nil
	}
	ok := from.File != "" && start.File != ""
	if ok {
		var err error
		if ok, err = s.positionAvailable(ctx, &from); err != nil {
			return nil, start, err
		}
	}
	if !ok {
		// Without the binlog since the snapshot began the stream cannot
		// tell which rows it already delivered: they may be read again.
		log.Warn("mysql-cdc: the binlog since the snapshot began is gone; rows changed before this restart may arrive again as snapshot reads", "snapshot_from", from.human(), "stream_from", start.human())
		return inc, start, nil
	}
	log.Info("mysql-cdc: resuming the snapshot alongside the stream; reading the binlog since the snapshot began without emitting, to know which rows the stream already delivered",
		"table_index", prog.Index, "tables", len(prog.Tables), "snapshot_from", from.human(), "stream_from", start.human())
	inc.mute = &start
	return inc, position{File: from.File, Pos: from.Pos, GTID: from.GTID}, nil
}

// read is the reader: chunk after chunk until the snapshot is complete
// or ctx is done.
func (inc *incremental) read(ctx context.Context) error {
	rt := connector.RuntimeFrom(ctx)
	var c *conn
	defer func() {
		if c != nil {
			_ = c.Close()
		}
	}()
	estimates := map[string]int64{}
	working := false
	for {
		inc.mu.Lock()
		prog := inc.prog
		inc.mu.Unlock()
		if prog == nil {
			if working {
				rt.Logger().Info("snapshot finished")
				working = false
			}
			select {
			case <-ctx.Done():
				return nil
			case <-inc.wake:
				continue
			}
		}
		working = true
		if c == nil {
			var err error
			if c, err = inc.connect(ctx); err != nil {
				return nilIfDone(ctx, err)
			}
		}
		table := prog.Tables[prog.Index]
		task := inc.s.cfg.Database + "." + table
		if _, ok := estimates[task]; !ok {
			estimates[task] = tableEstimate(c, inc.s.cfg.Database, table)
		}
		ch, err := inc.readChunk(c, prog, table)
		if err != nil {
			return nilIfDone(ctx, fmt.Errorf("snapshot of %s: %w", task, err))
		}
		emitted, err := inc.handoff(ctx, ch)
		if err != nil {
			return nilIfDone(ctx, err)
		}
		if !emitted {
			continue // the table changed shape in the window, or has no key and changed: read the chunk again
		}
		if ch.last {
			rt.Done(task)
		} else {
			inc.mu.Lock()
			done := inc.prog.Done
			inc.mu.Unlock()
			rt.Progress(task, done, estimates[task])
		}
	}
}

// connect opens the reader's connection, closed when ctx is done.
func (inc *incremental) connect(ctx context.Context) (*conn, error) {
	s := inc.s
	c, err := s.connect(ctx, false)
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, func() { _ = c.Close() })
	for _, q := range []string{
		"SET SESSION time_zone = '+00:00'",
		"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
	} {
		if err := c.exec(q); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("%s: %w", q, err)
		}
	}
	sid, err := c.query("SELECT @@server_id")
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	s.snapServerID = append([]byte(nil), sid.Rows[0][0]...)
	return c, nil
}

func nilIfDone(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// readChunk reads the chunk after prog.After in a read view of its own,
// bracketed by watermarks.
func (inc *incremental) readChunk(c *conn, prog *snapState, table string) (*chunk, error) {
	s := inc.s
	ch := &chunk{table: table, done: make(chan bool, 1)}
	// Low is taken before the table's shape is read, so DDL after it
	// spoils the chunk.
	low, err := currentPosition(c)
	if err != nil {
		return nil, err
	}
	ch.low = binlogPos{low.File, low.Pos}
	if ch.ts, err = loadTableSchema(c, s.cfg.Database, table); err != nil {
		return nil, err
	}
	if ch.ts == nil {
		ch.high, ch.last = ch.low, true
		return ch, nil
	}
	var high *position
	if c.isMariaDB() {
		high, err = beginSnapshot(c) // the read view's own position
	} else if err = c.exec("START TRANSACTION WITH CONSISTENT SNAPSHOT"); err == nil {
		high, err = currentPosition(c)
	}
	if err != nil {
		return nil, err
	}
	defer func() { _ = c.exec("COMMIT") }()
	ch.high = binlogPos{high.File, high.Pos}
	batch := s.cfg.snapshotBatch()
	q, err := chunkQuery(ch.ts, prog.After, batch)
	if err != nil {
		return nil, err
	}
	res, err := c.query(q)
	if err != nil {
		return nil, err
	}
	columns, now := ch.ts.columnTypes(), time.Now().UTC()
	for _, row := range res.Rows {
		e, after, err := s.readEvent(ch.ts, row, columns, "", now)
		if err != nil {
			return nil, err
		}
		ch.evs = append(ch.evs, e)
		ch.afters = append(ch.afters, after)
	}
	ch.last = len(ch.ts.PK) == 0 || len(res.Rows) < batch
	return ch, nil
}

// handoff gives the chunk to the stream and waits until it was emitted
// (true) or found spoiled (false). A stream idle at or past the chunk's
// high watermark gets it emitted here and now.
func (inc *incremental) handoff(ctx context.Context, ch *chunk) (bool, error) {
	inc.mu.Lock()
	inc.pending = ch
	var err error
	if st := inc.st; st != nil && st.chunkDue() {
		st.emitChunk()
		err = st.flush(ctx)
	}
	inc.mu.Unlock()
	if err != nil {
		return false, err
	}
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case ok := <-ch.done:
		return ok, nil
	}
}

// note records the row changes of a captured table (streamer, under mu).
func (inc *incremental) note(ti *tableInfo, changes []rowChange, at binlogPos) {
	if ti.db != inc.s.cfg.Database || !inc.tables[ti.table] {
		return
	}
	if len(changes) > 0 && changes[0].Key == nil {
		inc.touched[ti.table] = at
		return
	}
	keys := inc.changed[ti.table]
	if keys == nil {
		keys = map[string]struct{}{}
		inc.changed[ti.table] = keys
	}
	for i := range changes {
		keys[string(changes[i].Key)] = struct{}{}
	}
}

// noteDDL records DDL on a table (streamer, under mu).
func (inc *incremental) noteDDL(db, table string, at binlogPos) {
	if db == inc.s.cfg.Database && inc.tables[table] {
		inc.ddl[table] = at
	}
}

// chunkDue reports whether the pending chunk can be emitted now: the
// stream is between transactions at or past the chunk's high watermark,
// emitting, and not at a boundary whose next transaction was partly
// emitted before a restart (a chunk there would hide those rows from the
// resume).
func (st *streamer) chunkDue() bool {
	ch := st.inc.pending
	return ch != nil && st.inc.mute == nil && !st.inTxn && !(st.firstTxn && st.skip > 0) &&
		st.reach.file != "" && cmpBinlogPos(st.reach, ch.high) >= 0
}

// advance moves the stream's place past an event that ended at end and,
// between transactions, ends the mute or emits the pending chunk when
// their time has come (streamer, under mu).
func (st *streamer) advance(typ byte, end binlogPos) {
	if typ != evHeartbeat && end.pos != 0 && end.file != "" && cmpBinlogPos(end, st.reach) > 0 {
		st.reach = end
	}
	if st.inTxn {
		return
	}
	if m := st.inc.mute; m != nil && cmpBinlogPos(st.reach, binlogPos{m.File, m.Pos}) >= 0 {
		// The stored position: emit from here, skipping what the
		// transaction starting here already had emitted.
		st.inc.mute = nil
		st.firstTxn, st.skip = true, m.Skip
		st.inc.log.Info("mysql-cdc: reached the stored position; emitting again", "position", st.bHuman)
	}
	if st.chunkDue() {
		st.emitChunk()
	}
}

// emitChunk appends the pending chunk's rows the stream has not
// delivered to the batch, at the current boundary, and moves the
// snapshot's progress past the chunk (under mu, between transactions).
func (st *streamer) emitChunk() {
	inc := st.inc
	ch := inc.pending
	inc.pending = nil
	if ch.ts != nil && (cmpBinlogPos(inc.ddl[ch.table], ch.low) >= 0 ||
		len(ch.ts.PK) == 0 && cmpBinlogPos(inc.touched[ch.table], ch.low) >= 0) {
		ch.done <- false
		return
	}
	prog := *inc.prog
	keys := inc.changed[ch.table]
	before := len(st.batch)
	for i, e := range ch.evs {
		prog.After = ch.afters[i]
		if _, seen := keys[string(e.Key)]; seen && e.Key != nil {
			continue
		}
		prog.Done++
		rowProg := prog
		p := position{File: st.boundary.File, Pos: st.boundary.Pos, GTID: st.boundary.GTID, Snap: &rowProg}
		e.Metadata.Position = p.encode()
		e.Source.Position, e.Source.Commit = st.bHuman, st.bFilePos
		st.batch = append(st.batch, e)
	}
	inc.rows.Add(uint64(len(ch.evs)))
	if ch.last {
		delete(inc.tables, ch.table)
		delete(inc.changed, ch.table)
		prog.Index, prog.After, prog.Done = prog.Index+1, nil, 0
	}
	if prog.Index >= len(prog.Tables) {
		inc.prog = nil // complete: positions are plain stream positions again
	} else {
		inc.prog = &prog
	}
	// Later positions carry the progress past this chunk; so does the
	// chunk's last row, whatever rows were left out after it.
	st.setBoundary(st.boundary)
	if n := len(st.batch); n > before {
		p := position{File: st.boundary.File, Pos: st.boundary.Pos, GTID: st.boundary.GTID, Snap: inc.prog}
		st.batch[n-1].Metadata.Position = p.encode()
	}
	ch.done <- true
}

// snapshotSignal is a row of the signal table.
type snapshotSignal struct {
	ServerID json.Number `json:"server_id"`
	Tables   string      `json:"tables"` // JSON list of table names
}

// signal handles rows inserted into the signal table (streamer, under
// mu): a request for this source (its server_id) queues its tables.
func (st *streamer) signal(rh rowsHeader, ti *tableInfo) error {
	changes, err := st.dec.decodeRows(rh, ti)
	if err != nil {
		return fmt.Errorf("decoding the signal table %s.%s: %w", ti.db, ti.table, err)
	}
	self := strconv.FormatUint(uint64(st.src.cfg.ServerID), 10)
	for _, rc := range changes {
		var sig snapshotSignal
		var tables []string
		if err := json.Unmarshal(rc.After, &sig); err != nil || json.Unmarshal([]byte(sig.Tables), &tables) != nil {
			st.inc.log.Warn("mysql-cdc: ignoring a malformed snapshot signal", "table", ti.table)
			continue
		}
		if sig.ServerID.String() != self {
			continue // for another source on this server
		}
		st.inc.request(tables, st.boundary)
	}
	st.setBoundary(st.boundary)
	return nil
}

// request queues tables for a snapshot alongside the stream; at is where
// the stream is, where noting changed rows of new work begins.
func (inc *incremental) request(tables []string, at position) {
	s := inc.s
	var prog snapState
	if inc.prog != nil {
		prog = *inc.prog
		prog.Tables = append([]string(nil), prog.Tables...)
	} else {
		prog.From = &position{File: at.File, Pos: at.Pos, GTID: at.GTID}
	}
	for _, t := range tables {
		switch {
		case !s.filter.captured(s.cfg.Database, t) || !s.filter.snapshotted(s.cfg.Database, t):
			inc.log.Warn("mysql-cdc: snapshot signal for a table this source does not snapshot; ignored", "table", t)
		case inc.tables[t]:
			inc.log.Info("mysql-cdc: snapshot signal for a table being snapshotted; ignored", "table", t)
		default:
			inc.log.Info("mysql-cdc: snapshot of table requested by signal; reading it alongside the stream", "table", t)
			prog.Tables = append(prog.Tables, t)
			inc.tables[t] = true
			delete(inc.changed, t)
		}
	}
	if prog.Index < len(prog.Tables) {
		inc.prog = &prog
		select {
		case inc.wake <- struct{}{}:
		default:
		}
	}
}

// RequestSnapshot asks the source streaming with this config's server_id
// to read tables again alongside its stream: a row in the signal table,
// which reaches the source through the binlog in order with the changes
// (and after a restart, from the stored position). The table is created
// when missing, so the user needs CREATE and INSERT on it (or create it
// beforehand with the columns below).
func (s *Source) RequestSnapshot(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return errors.New("name at least one table")
	}
	c, err := s.connect(ctx, true)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	all, err := listTables(c, s.cfg.Database)
	if err != nil {
		return err
	}
	exists := map[string]bool{}
	for _, t := range all {
		exists[t] = true
	}
	for i, n := range names {
		if db, t, ok := strings.Cut(n, "."); ok {
			if db != s.cfg.Database {
				return fmt.Errorf("table %q is not in database %s, which this source captures", n, s.cfg.Database)
			}
			names[i] = t
		}
		t := names[i]
		if !exists[t] || !s.filter.captured(s.cfg.Database, t) || !s.filter.snapshotted(s.cfg.Database, t) {
			return fmt.Errorf("table %q is not captured and snapshotted by this source (database %s, tables, include_tables/exclude_tables, snapshot.include_tables/exclude_tables)", n, s.cfg.Database)
		}
	}
	tbl := quoteIdent(s.cfg.Database) + "." + quoteIdent(s.cfg.SignalTable)
	if err := c.exec("CREATE TABLE IF NOT EXISTS " + tbl + " (id BIGINT AUTO_INCREMENT PRIMARY KEY, server_id INT UNSIGNED NOT NULL, tables TEXT NOT NULL, requested_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))"); err != nil {
		return fmt.Errorf("create the signal table %s: %w", tbl, err)
	}
	list, _ := json.Marshal(names)
	if err := c.exec("INSERT INTO " + tbl + " (server_id, tables) VALUES (" + strconv.FormatUint(uint64(s.cfg.ServerID), 10) + ", " + quoteString(string(list)) + ")"); err != nil {
		return fmt.Errorf("write the snapshot signal into %s: %w", tbl, err)
	}
	return nil
}
