package postgrescdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/metric"
)

// watermarkPrefix marks the logical decoding messages that open (low) and
// close (high) the window of a snapshot chunk.
const watermarkPrefix = "rivven_watermark"

// incremental is a snapshot read while streaming, chunk by chunk, with
// the DBLog watermark algorithm: for each chunk the reader writes a low
// watermark into the WAL, selects the chunk, writes a high watermark.
// The stream, meeting the low watermark, starts noting the keys of the
// chunk's table that change; at the high watermark it drops the chunk's
// rows with those keys (the stream already carried a newer image of
// them, or will right after) and emits the rest there, in stream order.
// So a snapshot row never follows a newer change of its row, and no row
// changed meanwhile arrives as a stale read: the snapshot needs no
// consistent point of its own, only the stream's order.
//
// Beyond DBLog, a row the stream has delivered a change of since the
// table's snapshot began (its since LSN: the slot's consistent point for
// a snapshot resumed after a crash, the stream's start for one on an
// existing slot, the signal's place for one asked for) is left out of
// its chunk: that change carried the row's state, so a row arrives once,
// as a read or through its changes, and never as a read repeating its
// change. (An update that leaves a TOASTed value unchanged does not carry
// it: a row whose changes were all such updates is still read.)
//
// Those keys live in memory only. To know them again after a restart,
// the slot is confirmed no further than the lowest since of the tables
// not done (hold), so PostgreSQL keeps the WAL from there; a restart
// streams from that point again, noting keys without emitting anything
// (mute) up to the stored position, and emits from there on. Persisting
// the keys in the position instead would grow every event's position
// with every changed row; holding the slot costs WAL kept for the
// snapshot's duration and a re-read of it on restart, both bounded by
// the snapshot's own length.
//
// It is used whenever a snapshot cannot come from the slot's exported
// snapshot: resuming one interrupted by a crash, a snapshot on a slot
// that already exists, and on-demand snapshots of a table signalled
// while streaming.
type incremental struct {
	s     *Source
	types *typeCache
	todo  chan *snapTable
	// mu guards the snapshot progress (state) the reader reads and the
	// stream side advances.
	mu sync.Mutex
	// cur is the chunk whose window the stream is looking for.
	cur atomic.Pointer[window]
	seq atomic.Uint64
	run string // distinguishes this run's watermarks from older ones

	// Stream side only.
	tables  map[string]*table // captured tables by schema.table, for signals
	state   *snapState
	pending map[string]bool // tables not done
	first   map[string]bool // tables whose schema event this run emitted
	rows    *metric.Counter
	// recent are, per table being snapshotted, the transactions that
	// changed each key outside a window (any key, for tables without
	// one), as far as they may still be invisible to a later chunk's
	// snapshot: transactions at or after floor, the xmin of the last
	// snapshot taken (every older one is visible to all later ones).
	recent   map[string]*recentChanges
	floor    atomic.Uint32
	floorSet atomic.Bool
	// since is where noting each pending table's changed keys began
	// (mirrors state.Since); delivered are the keys of each pending
	// table whose current state the stream has delivered since then;
	// hold is the furthest the slot may be confirmed: the lowest since
	// (0: no table pending). It rises (to raiseTo, when raise is set)
	// only once an event whose position no longer needs the lower since
	// was handed on: before, a restart would still read from there.
	since     map[string]pglogrepl.LSN
	delivered map[string]map[string]bool
	hold      pglogrepl.LSN
	raiseTo   pglogrepl.LSN
	raise     bool
	// holding says hold is set (for the heartbeat); released is set by
	// the heartbeat when holding on would get the slot invalidated
	// (max_slot_wal_keep_size): acks then go through unclamped until no
	// snapshot is pending any more.
	holding  atomic.Bool
	released atomic.Bool
	// mute is the stored position of a restart that streams from an
	// earlier since to learn the delivered keys again: transactions
	// committing before it were emitted already (0: emit everything).
	mute pglogrepl.LSN
}

type recentChanges struct {
	keys map[string][]uint32
	any  []uint32
}

// window is one chunk between its watermarks.
type window struct {
	id string
	st *snapTable
	// Stream side: open once the low watermark was read; changed are
	// the keys changed after it.
	open    bool
	changed map[string]bool
	invalid bool
	// Reader side: the chunk and the snapshot it was read in, set before
	// the high watermark is written.
	mu    sync.Mutex
	chunk *chunk
	snap  *xidSnapshot
	last  []*string // key of the chunk's last row (nil: table done)
	done  chan bool // the stream handled the high watermark: true = emitted, false = read again
}

// xidSnapshot is pg_current_snapshot() of a chunk's read, in 32-bit xids
// as the replication stream carries them.
type xidSnapshot struct {
	xmin, xmax uint32
	xip        map[uint32]bool
}

func parseXidSnapshot(s string) (*xidSnapshot, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return nil, fmt.Errorf("unexpected snapshot %q", s)
	}
	n := make([]uint64, 2)
	for i := range n {
		v, err := strconv.ParseUint(parts[i], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("unexpected snapshot %q", s)
		}
		n[i] = v
	}
	xs := &xidSnapshot{xmin: uint32(n[0]), xmax: uint32(n[1]), xip: map[uint32]bool{}}
	if parts[2] != "" {
		for _, p := range strings.Split(parts[2], ",") {
			v, err := strconv.ParseUint(p, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("unexpected snapshot %q", s)
			}
			xs.xip[uint32(v)] = true
		}
	}
	return xs, nil
}

// sees reports whether a transaction that committed is visible in the
// snapshot (xids compare modulo 2^32, as PostgreSQL's do).
func (xs *xidSnapshot) sees(xid uint32) bool {
	if int32(xid-xs.xmin) < 0 {
		return true
	}
	return int32(xid-xs.xmax) < 0 && !xs.xip[xid]
}

// newIncremental prepares the watermarked snapshot of a stream; with run,
// the tables of st not done yet are read (else only signalled ones).
// start is where the stream starts: the since of a table st has none for.
// mute is the stored position when the stream starts before it (see
// incremental), else 0.
func newIncremental(s *Source, types *typeCache, st *snapState, tables []*table, rows *metric.Counter, run bool, start, mute pglogrepl.LSN) *incremental {
	inc := &incremental{
		s: s, types: types, state: st,
		todo:      make(chan *snapTable, 1024),
		pending:   map[string]bool{},
		first:     map[string]bool{},
		tables:    map[string]*table{},
		recent:    map[string]*recentChanges{},
		run:       strconv.FormatInt(time.Now().UnixNano(), 36),
		rows:      rows,
		since:     map[string]pglogrepl.LSN{},
		delivered: map[string]map[string]bool{},
		mute:      mute,
	}
	for _, t := range tables {
		inc.tables[t.fullName()] = t
	}
	if !run {
		return inc
	}
	done := map[string]bool{}
	for _, d := range st.Done {
		done[d] = true
	}
	// A position that names the tables under way (Since) resumes those
	// only: a snapshot asked for some tables must not grow to every
	// captured table at a restart. Without Since (a first snapshot's
	// position, or one written before Since existed) every table not done
	// is read.
	only := len(st.Since) > 0
	for _, t := range tables {
		if done[t.fullName()] || !s.snapshotted(t) {
			continue
		}
		if _, pending := st.Since[t.fullName()]; only && !pending {
			continue
		}
		since := start
		if v, err := pglogrepl.ParseLSN(st.Since[t.fullName()]); err == nil {
			since = v
		}
		inc.add(s.snapTable(t), since)
	}
	// Tables done or no longer snapshotted keep no since.
	for name := range st.Since {
		if !inc.pending[name] {
			delete(st.Since, name)
		}
	}
	return inc
}

// add queues a table whose stream changes are noted from since on
// (stream side, or before streaming).
func (inc *incremental) add(t *snapTable, since pglogrepl.LSN) {
	name := t.t.fullName()
	if inc.pending[name] {
		return
	}
	inc.mu.Lock()
	defer inc.mu.Unlock()
	inc.pending[name] = true
	if inc.state.At == nil {
		inc.state.At = map[string][]*string{}
	}
	if inc.state.Since == nil {
		inc.state.Since = map[string]string{}
	}
	inc.state.Since[name] = lsnString(since)
	inc.since[name] = since
	inc.delivered[name] = map[string]bool{}
	inc.setHold()
	inc.state.Done = removeString(inc.state.Done, name)
	inc.todo <- t
}

// deliveredKeys counts the keys noted (for the log).
func (inc *incremental) deliveredKeys() int {
	n := 0
	for _, keys := range inc.delivered {
		n += len(keys)
	}
	return n
}

// setHold computes hold from the tables pending: a lower one at once, a
// higher one (or none) with the next events handed on (holdAck).
func (inc *incremental) setHold() {
	var want pglogrepl.LSN
	for name := range inc.pending {
		if v := inc.since[name]; want == 0 || v < want {
			want = v
		}
	}
	if inc.hold == 0 || want != 0 && want <= inc.hold {
		inc.raise = false
		inc.setHoldTo(want)
		return
	}
	inc.raiseTo, inc.raise = want, true
}

func (inc *incremental) setHoldTo(v pglogrepl.LSN) {
	inc.hold = v
	inc.holding.Store(v != 0)
	if v == 0 {
		inc.released.Store(false)
	}
}

// holdAck is how far ack may be confirmed to PostgreSQL, as an item with
// events (evs) or without is handed on: no further than the lowest since
// of the tables pending in the positions handed on, whose WAL a restart
// reads again.
func (inc *incremental) holdAck(ack pglogrepl.LSN, evs bool) pglogrepl.LSN {
	if evs && inc.raise {
		inc.raise = false
		inc.setHoldTo(inc.raiseTo)
	}
	if inc.hold != 0 && ack > inc.hold && !inc.released.Load() {
		return inc.hold
	}
	return ack
}

func (inc *incremental) active() bool { return len(inc.pending) > 0 }

func removeString(ss []string, s string) []string {
	out := ss[:0]
	for _, x := range ss {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// read is the reader: it runs until ctx is done, taking queued tables one
// after the other, chunk by chunk.
func (inc *incremental) read(ctx context.Context, st *streamer) error {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close(context.WithoutCancel(ctx))
		}
	}()
	log := connector.RuntimeFrom(ctx).Logger()
	for {
		var t *snapTable
		select {
		case <-ctx.Done():
			return nil
		case t = <-inc.todo:
		}
		if conn == nil {
			c, err := inc.s.connect(ctx)
			if err != nil {
				return err
			}
			conn = c
			var xmin string
			if err := conn.QueryRow(ctx, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text").Scan(&xmin); err != nil {
				return nilIfDone(ctx, fmt.Errorf("snapshot: read the oldest running transaction: %w", err))
			}
			n, _ := strconv.ParseUint(xmin, 10, 64)
			inc.floor.Store(uint32(n))
			inc.floorSet.Store(true)
		}
		after := st.resumeKey(t)
		log.Info("postgres-cdc: watermarked snapshot of table starting", "table", t.t.fullName(), "resumed", after != nil)
		for {
			if inc.s.chunkGate != nil {
				if inc.s.chunkGate(ctx); ctx.Err() != nil {
					return nil
				}
			}
			w := &window{id: inc.run + "." + strconv.FormatUint(inc.seq.Add(1), 10), st: t, done: make(chan bool, 1)}
			inc.cur.Store(w)
			if err := emitWatermark(ctx, conn, "low "+w.id); err != nil {
				return nilIfDone(ctx, err)
			}
			ch, last, xs, err := inc.selectChunk(ctx, conn, t, after)
			if err != nil {
				return nilIfDone(ctx, fmt.Errorf("snapshot of %s: %w", t.t.fullName(), err))
			}
			w.mu.Lock()
			w.chunk, w.last, w.snap = ch, last, xs
			w.mu.Unlock()
			if err := emitWatermark(ctx, conn, "high "+w.id); err != nil {
				return nilIfDone(ctx, err)
			}
			var emitted bool
			select {
			case <-ctx.Done():
				return nil
			case emitted = <-w.done:
			}
			if !emitted {
				continue // the table changed shape or was truncated in the window: read the chunk again
			}
			if last == nil {
				break
			}
			after = last
		}
	}
}

func emitWatermark(ctx context.Context, conn *pgx.Conn, content string) error {
	// Non-transactional: it is decoded at its place in the WAL, not at a
	// commit, so everything committed before it precedes it in the stream.
	_, err := conn.Exec(ctx, `SELECT pg_logical_emit_message(false, '`+watermarkPrefix+`', $1)`, content)
	if err != nil {
		return fmt.Errorf("write snapshot watermark: %w", err)
	}
	return nil
}

// selectChunk reads the chunk after key after (nil: from the start) in a
// transaction of its own, and returns the snapshot it saw. last is the
// key of the chunk's last row when more rows follow, nil when the table
// is done. A table without a primary key cannot be paged: it is one
// chunk.
func (inc *incremental) selectChunk(ctx context.Context, c *pgx.Conn, t *snapTable, after []*string) (*chunk, []*string, *xidSnapshot, error) {
	if _, err := c.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return nil, nil, nil, err
	}
	defer func() { _, _ = c.Exec(context.WithoutCancel(ctx), "ROLLBACK") }()
	// The first statement fixes the transaction's snapshot: the chunk is
	// read in exactly this one.
	var snapText string
	if err := c.QueryRow(ctx, "SELECT pg_current_snapshot()::text").Scan(&snapText); err != nil {
		return nil, nil, nil, err
	}
	xs, err := parseXidSnapshot(snapText)
	if err != nil {
		return nil, nil, nil, err
	}
	ch, last, err := inc.readChunk(ctx, c, t, after)
	return ch, last, xs, err
}

func (inc *incremental) readChunk(ctx context.Context, c *pgx.Conn, t *snapTable, after []*string) (*chunk, []*string, error) {
	colList := make([]string, len(t.cols))
	for i, col := range t.cols {
		colList[i] = quoteIdent(col.Name)
	}
	sel := "SELECT " + strings.Join(colList, ", ") + " FROM " + t.t.quoted()
	var got chunk
	var sendErr error
	send := func(ch chunk) bool {
		if ch.err != nil {
			sendErr = ch.err
			return false
		}
		got.st = t
		got.evs = append(got.evs, ch.evs...)
		got.pks = append(got.pks, ch.pks...)
		got.done = ch.done
		return true
	}
	first := false
	if len(t.t.PK) == 0 {
		if !inc.s.readRows(ctx, c, inc.types, t, sel, nil, nil, &first, send, true) && sendErr == nil {
			return nil, nil, ctx.Err()
		}
		got.done = true
		return &got, nil, sendErr
	}
	keys := make([]string, len(t.t.PK))
	params := make([]string, len(t.t.PK))
	for i, k := range t.t.PK {
		keys[i] = quoteIdent(k)
		params[i] = "$" + strconv.Itoa(i+1)
	}
	q := sel + " ORDER BY " + strings.Join(keys, ", ") + " LIMIT " + strconv.Itoa(inc.s.cfg.Snapshot.BatchSize+1)
	var args [][]byte
	if len(after) == len(t.t.PK) {
		q = sel + " WHERE (" + strings.Join(keys, ", ") + ") > (" + strings.Join(params, ", ") + ")" + q[len(sel):]
		args = make([][]byte, len(after))
		for i, a := range after {
			if a == nil {
				return nil, nil, fmt.Errorf("resume key has a NULL column")
			}
			args[i] = []byte(*a)
		}
	}
	var last []*string
	if !inc.s.readRows(ctx, c, inc.types, t, q, args, &last, &first, send, false) {
		if sendErr != nil {
			return nil, nil, sendErr
		}
		return nil, nil, ctx.Err()
	}
	return &got, last, nil
}

// resumeKey is where the reading of t starts: after the key the stream
// side last emitted for it (read under the reader's lock on state).
func (st *streamer) resumeKey(t *snapTable) []*string {
	st.inc.mu.Lock()
	defer st.inc.mu.Unlock()
	at := st.inc.state.At[t.t.fullName()]
	if len(at) == 0 {
		return nil
	}
	return at
}

// changed notes a change of the window's table by transaction xid
// (stream side).
//
// Changes after the low watermark spoil the chunk's row (DBLog). Changes
// before it spoil the row only when their transaction is not visible in
// the chunk's snapshot: a commit is written to the WAL before it becomes
// visible (it waits for its flush in between), so a transaction can
// precede the low watermark in the stream and still be missing from a
// chunk read after it; its row in the chunk is then older than the
// change the stream has already delivered.
func (inc *incremental) changed(r *relation, typ events.Type, xid uint32, final pglogrepl.LSN, oldType uint8, old, nu *pglogrepl.TupleData) {
	name := r.schema + "." + r.name
	if !inc.pending[name] {
		return
	}
	if t := inc.tables[name]; t != nil && len(t.PK) > 0 && len(r.keyIdx) > 0 && final >= inc.since[name] {
		inc.deliver(name, r, typ, oldType, old, nu)
	}
	w := inc.cur.Load()
	inWindow := w != nil && w.open && w.st.t.Schema == r.schema && w.st.t.Name == r.name
	if !inWindow && inc.floorSet.Load() && int32(xid-inc.floor.Load()) < 0 {
		return // visible to every chunk read from now on
	}
	rc := inc.recent[name]
	if rc == nil {
		rc = &recentChanges{keys: map[string][]uint32{}}
		inc.recent[name] = rc
	}
	if t := inc.tables[name]; t == nil || len(t.PK) == 0 || len(r.keyIdx) == 0 {
		// No key to tell rows apart: the change concerns the whole chunk.
		if inWindow {
			w.invalid = true
		} else {
			rc.any = append(rc.any, xid)
		}
		return
	}
	for _, tup := range []*pglogrepl.TupleData{old, nu} {
		if tup == nil {
			continue
		}
		key := tupleKey(r, tup)
		if inWindow {
			w.changed[key] = true
		} else if xs := rc.keys[key]; len(xs) == 0 || xs[len(xs)-1] != xid {
			rc.keys[key] = append(xs, xid)
		}
	}
}

// tupleKey is the text of a tuple's key columns, as pkJSON renders a
// chunk row's.
func tupleKey(r *relation, tup *pglogrepl.TupleData) string {
	pk := make([]*string, len(r.keyIdx))
	for j, i := range r.keyIdx {
		if i < len(tup.Columns) && tup.Columns[i].DataType == pglogrepl.TupleDataTypeText {
			v := string(tup.Columns[i].Data)
			pk[j] = &v
		}
	}
	return pkJSON(pk)
}

// deliver notes the keys whose current state a change of a pending table
// delivers: an insert's row, an update's new row when it carries every
// value, and the old key of a row deleted or moved to another key (gone:
// no chunk can read it again but as an insert the stream delivers). An
// update that leaves a TOASTed value unchanged sends no value for it
// (unless REPLICA IDENTITY FULL gives the old row): its row is noted only
// when an earlier change since the snapshot began carried the whole row,
// else its read still brings the value.
func (inc *incremental) deliver(name string, r *relation, typ events.Type, oldType uint8, old, nu *pglogrepl.TupleData) {
	keys := inc.delivered[name]
	if keys == nil {
		return
	}
	switch typ {
	case events.Insert:
		keys[tupleKey(r, nu)] = true
	case events.Delete:
		if old != nil {
			keys[tupleKey(r, old)] = true
		}
	case events.Update:
		key := tupleKey(r, nu)
		if old != nil {
			if k := tupleKey(r, old); k != key {
				keys[k] = true
			}
		}
		if oldType == 'O' || !hasUnchangedToast(nu) {
			keys[key] = true
		}
	}
}

func hasUnchangedToast(t *pglogrepl.TupleData) bool {
	for _, c := range t.Columns {
		if c.DataType == pglogrepl.TupleDataTypeToast {
			return true
		}
	}
	return false
}

// stale reports whether the chunk's row with key is older than a change
// the stream has delivered or will deliver before the high watermark.
func (w *window) stale(rc *recentChanges, key string) bool {
	if w.changed[key] {
		return true
	}
	if rc != nil {
		for _, xid := range rc.keys[key] {
			if !w.snap.sees(xid) {
				return true
			}
		}
	}
	return false
}

// prune forgets the recent changes of transactions older than xmin, the
// snapshot's oldest running transaction: they are visible to every
// snapshot taken from now on.
func (inc *incremental) prune(xmin uint32) {
	if inc.floorSet.Load() && int32(xmin-inc.floor.Load()) <= 0 {
		return
	}
	inc.floor.Store(xmin)
	inc.floorSet.Store(true)
	keep := func(xs []uint32) []uint32 {
		out := xs[:0]
		for _, x := range xs {
			if int32(x-xmin) >= 0 {
				out = append(out, x)
			}
		}
		return out
	}
	for name, rc := range inc.recent {
		for k, xs := range rc.keys {
			if xs = keep(xs); len(xs) == 0 {
				delete(rc.keys, k)
			} else {
				rc.keys[k] = xs
			}
		}
		rc.any = keep(rc.any)
		if len(rc.keys) == 0 && len(rc.any) == 0 {
			delete(inc.recent, name)
		}
	}
}

// invalidate marks the open window of a table spoiled: its chunk is read
// again (a truncate or a new table shape in the window).
func (inc *incremental) invalidate(schema, name string) {
	if w := inc.cur.Load(); w != nil && w.open && w.st.t.Schema == schema && w.st.t.Name == name {
		w.invalid = true
	}
}

// watermark handles a watermark message read from the stream.
func (inc *incremental) watermark(ctx context.Context, st *streamer, content string) error {
	kind, id, _ := strings.Cut(content, " ")
	w := inc.cur.Load()
	if w == nil || w.id != id {
		return nil // another run's (before a restart) or another source's
	}
	switch kind {
	case "low":
		w.open, w.changed = true, map[string]bool{}
		return nil
	case "high":
	default:
		return nil
	}
	inc.cur.Store(nil)
	w.mu.Lock()
	ch, last := w.chunk, w.last
	w.mu.Unlock()
	t := w.st.t
	name := t.fullName()
	rc := inc.recent[name]
	if rc != nil && w.snap != nil {
		for _, xid := range rc.any {
			if !w.snap.sees(xid) {
				w.invalid = true
			}
		}
	}
	if w.snap != nil {
		defer inc.prune(w.snap.xmin)
	}
	if !w.open || w.invalid || ch == nil || w.snap == nil {
		w.done <- false
		return nil
	}
	// Every transaction up to here was handed on: resuming from the last
	// commit and this progress reads the next chunk.
	lsn := st.committed
	lsnText := lsnString(lsn)
	inc.mu.Lock()
	var batch []*events.Event
	if !inc.first[name] {
		inc.first[name] = true
		batch = append(batch, inc.s.schemaEvent(t, streamPosition(nil, lsn, 0, 0, incSuffix(inc.state)), lsnText, time.Now().UTC()))
	}
	prefix := incPrefix(lsn, inc.state, name)
	delivered := inc.delivered[name]
	for i, e := range ch.evs {
		key := "[]"
		if ch.pks != nil {
			key = pkJSON(ch.pks[i])
			if delivered[key] || w.stale(rc, key) {
				continue
			}
		}
		e.Metadata.Position = prefix + key + "}}}"
		e.Source.Position = lsnText
		batch = append(batch, e)
	}
	if last == nil {
		delete(inc.state.At, name)
		delete(inc.state.Since, name)
		inc.state.Done = append(inc.state.Done, name)
		delete(inc.pending, name)
		delete(inc.recent, name)
		delete(inc.since, name)
		delete(inc.delivered, name)
		inc.setHold()
	} else {
		inc.state.At[name] = last
	}
	if inc.active() {
		st.incSfx = incSuffix(inc.state)
	} else {
		// The snapshot is complete: positions are plain stream positions again.
		inc.state = &snapState{At: map[string][]*string{}}
		st.incSfx = ""
	}
	inc.mu.Unlock()
	if len(batch) > 0 {
		// The last row carries the progress after the chunk, so a resume
		// after it goes on with the next chunk (or table).
		batch[len(batch)-1].Metadata.Position = streamPosition(nil, lsn, 0, 0, st.incSfx)
	}
	inc.rows.Add(uint64(len(ch.evs)))
	if last == nil {
		connector.RuntimeFrom(ctx).Logger().Info("postgres-cdc: watermarked snapshot of table done", "table", name)
	}
	if len(batch) > 0 {
		if err := st.push(ctx, item{evs: batch}); err != nil {
			return err
		}
	}
	w.done <- true
	return nil
}

// incPrefix renders a streaming position at lsn with the snapshot
// progress up to the value of table's "at" entry (each row appends its
// key, then "}}}").
func incPrefix(lsn pglogrepl.LSN, st *snapState, table string) string {
	return progressPrefix(lsn, "inc", st, table)
}

// signalPrefix marks the logical decoding messages `rivven-connect
// snapshot` writes to ask the source reading slot for a snapshot of
// tables while it streams.
const signalPrefix = "rivven_signal"

type snapshotSignal struct {
	Slot     string   `json:"slot"`
	Snapshot []string `json:"snapshot"`
}

// RequestSnapshot writes a signal into the WAL that the source streaming
// from this config's slot picks up when it reads that far: it then reads
// the tables (schema.table, or table) with watermarks alongside the
// stream. Every table must be captured and snapshotted by the config.
func (s *Source) RequestSnapshot(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return errors.New("name at least one table")
	}
	conn, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	tables, err := s.capturedTables(ctx, conn)
	if err != nil {
		return err
	}
	sig := snapshotSignal{Slot: s.cfg.SlotName}
	for _, n := range names {
		schema, name, err := splitTable(n, false)
		if err != nil {
			return err
		}
		var found []*table
		for _, t := range tables {
			if t.Name == name && (schema == "" || t.Schema == schema) && s.snapshotted(t) {
				found = append(found, t)
			}
		}
		switch len(found) {
		case 0:
			return fmt.Errorf("table %q is not captured and snapshotted by this source (publication %s, tables, snapshot.include_tables/exclude_tables)", n, s.cfg.PublicationName)
		case 1:
			sig.Snapshot = append(sig.Snapshot, found[0].fullName())
		default:
			return fmt.Errorf("table %q is in several schemas: name it as schema.table", n)
		}
	}
	b, _ := json.Marshal(sig)
	// Transactional: the signal is part of the WAL once this commits, and
	// the slot keeps it until the source has read past it.
	if _, err := conn.Exec(ctx, `SELECT pg_logical_emit_message(true, '`+signalPrefix+`', $1)`, string(b)); err != nil {
		return fmt.Errorf("write the snapshot signal: %w", err)
	}
	return nil
}

// signal handles a signal message read from the stream (stream side).
func (inc *incremental) signal(ctx context.Context, st *streamer, content []byte) {
	var sig snapshotSignal
	log := connector.RuntimeFrom(ctx).Logger()
	if err := json.Unmarshal(content, &sig); err != nil {
		log.Warn("postgres-cdc: ignoring a malformed snapshot signal", "error", err)
		return
	}
	if sig.Slot != inc.s.cfg.SlotName {
		return // for another source on this database
	}
	for _, name := range sig.Snapshot {
		t := inc.tables[name]
		if t == nil || !inc.s.snapshotted(t) {
			log.Warn("postgres-cdc: snapshot signal for a table this source does not snapshot; ignored", "table", name)
			continue
		}
		if inc.pending[name] {
			log.Info("postgres-cdc: snapshot signal for a table being snapshotted; ignored", "table", name)
			continue
		}
		inc.mu.Lock()
		delete(inc.state.At, name)
		delete(inc.first, name)
		inc.mu.Unlock()
		log.Info("postgres-cdc: snapshot of table requested by signal; reading it alongside the stream", "table", name)
		// Changes of transactions committing after the signal's are
		// left out of its chunks; earlier ones are read again.
		inc.add(inc.s.snapTable(t), st.finalLSN+1)
	}
	if inc.active() {
		st.incSfx = incSuffix(inc.state)
	}
}
