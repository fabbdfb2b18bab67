package postgrescdc

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/metric"
)

// heartbeatPrefix marks the logical decoding messages this source writes
// to keep an idle slot moving.
const heartbeatPrefix = "rivven_heartbeat"

// statusInterval is how often a standby status update is sent even when
// nothing changed (wal_sender_timeout defaults to 60s).
const statusInterval = 10 * time.Second

// item is what the replication reader hands the emitting goroutine:
// events (possibly none) and the LSN that may be confirmed once they and
// everything before them are published (0: none, e.g. mid-transaction).
type item struct {
	evs []*events.Event
	ack pglogrepl.LSN
	txs int
}

type relCol struct {
	name   string
	oid    uint32
	flags  uint8
	typmod int32
}

// relation is a table as the last Relation message described it.
type relation struct {
	schema, name string
	cols         []relCol
	keep         []bool
	keyIdx       []int // columns forming the event key
	pk           map[int]bool
	identity     byte
	captured     bool
	columns      string // source.columns of its events: the kept columns' types
	// si is its schema event's content; announce says that event is
	// still due (its Relation message came in a muted transaction).
	si       schemaInfo
	announce bool
}

// streamer decodes the replication stream. Its run method owns the
// replication connection; the emitting goroutine only touches acked.
type streamer struct {
	s      *Source
	conn   *pgconn.PgConn
	cat    *catalogConn
	types  *typeCache
	out    *queue
	acked  atomic.Uint64
	active atomic.Int64 // unix nanos of the last data message (heartbeat skips busy periods)

	rels map[uint32]*relation

	// the transaction being decoded
	inTx       bool
	xid        string
	xidN       uint32
	finalLSN   pglogrepl.LSN
	commitTime *time.Time
	n          int64 // changes of the transaction so far, skipped ones included
	// txCounts are the changes of the transaction per table so far,
	// skipped ones included, in the order the tables first changed (for
	// provide_transaction_metadata).
	txCounts  []events.CollectionCount
	committed pglogrepl.LSN
	skipTx    pglogrepl.LSN
	skipN     int64
	pending   []*events.Event

	// streamed (in-progress) transactions spooled to disk, by top-level xid
	spills    map[uint32]*spill
	spoolDir  string
	inStream  bool
	streamXid uint32

	lastSent   pglogrepl.LSN
	lastStatus time.Time
	lastMarker pglogrepl.LSN
	ticker     *time.Ticker
	posBuf     []byte

	events *metric.Counter

	// inc is the watermarked snapshot running alongside (nil: none);
	// incSfx is the inc member every position carries meanwhile.
	inc    *incremental
	incSfx string
	// mute, when set, is a stored position the stream started before
	// (to learn the keys a watermarked snapshot leaves out): changes of
	// transactions committing before it are noted, not emitted.
	mute pglogrepl.LSN
	log  *slog.Logger
}

// stream starts replication at start and runs until ctx is done or an
// error occurs.
// floor is the slot's confirmed position (or start when higher): the
// first position reported and the base of event positions.
// inc, when not nil, is a watermarked snapshot to read alongside.
func (s *Source) stream(ctx context.Context, emit connector.Emitter, conn *pgconn.PgConn, cat *catalogConn, types *typeCache, start, floor pglogrepl.LSN, resume position, inc *incremental) error {
	rt := connector.RuntimeFrom(ctx)
	log := rt.Logger()
	args := []string{"proto_version '2'", "publication_names " + quoteLiteral(s.cfg.PublicationName), "messages 'true'", "streaming 'on'"}
	if v := serverMajor(conn); v > 0 && v < 14 {
		// Protocol 2 (streaming of in-progress transactions) and the
		// messages option need 14; older servers spill big transactions
		// themselves and send them whole at commit, which this source
		// emits in bounded batches, and heartbeats advance the slot
		// through keepalives only.
		args = []string{"proto_version '1'", "publication_names " + quoteLiteral(s.cfg.PublicationName)}
	}
	// A walsender of this source's previous run may still hold the slot
	// for a moment after its connection closed: wait a little for it.
	for attempt := 0; ; attempt++ {
		err := pglogrepl.StartReplication(ctx, conn, s.cfg.SlotName, start, pglogrepl.StartReplicationOptions{PluginArgs: args})
		if err == nil {
			break
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55006" {
			if attempt < 50 && ctx.Err() == nil {
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
			return fmt.Errorf("start replication: slot %q is in use by another process (another pipeline with the same slot_name?): %w", s.cfg.SlotName, err)
		}
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("start replication on slot %q: %w", s.cfg.SlotName, err)
	}
	log.Info("postgres-cdc: streaming", "slot", s.cfg.SlotName, "from", lsnString(start))
	if s.streaming != nil {
		s.streaming()
	}
	spoolDir, err := s.spoolDir()
	if err != nil {
		return err
	}

	st := &streamer{
		s: s, conn: conn, cat: cat, types: types,
		// What waits for Emit: up to 16 items (small transactions, merged
		// into one batch) and up to maxBatch events (a big one).
		out:       newQueue(16, s.maxBatch),
		rels:      map[uint32]*relation{},
		committed: floor,
		skipTx:    resume.TxLSN,
		skipN:     resume.TxN,
		spills:    map[uint32]*spill{},
		spoolDir:  spoolDir,
		events:    rt.Counter(metricEvents, "Change events emitted (snapshot rows excluded)."),
		log:       log,
	}
	st.acked.Store(uint64(floor))
	st.lastSent = floor
	st.active.Store(time.Now().UnixNano())
	defer func() {
		st.removeSpills()
		_ = os.Remove(spoolDir) // only when empty
	}()

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	incErr := make(chan error, 1)
	if inc != nil {
		st.inc = inc
		st.mute = inc.mute
		if inc.active() {
			st.incSfx = incSuffix(inc.state)
		}
		go func() {
			if err := inc.read(rctx, st); err != nil {
				incErr <- err
				cancel()
			}
		}()
	}
	go func() { errc <- st.run(rctx) }()
	hbDone := make(chan struct{})
	go func() { defer close(hbDone); s.heartbeat(rctx, cat, &st.active, inc) }()

	txs := rt.Counter(metricTransactions, "Transactions emitted.")
	confirmed := rt.Gauge(metricConfirmedLSN, "Last LSN acknowledged downstream and confirmed to PostgreSQL.")
	var emitErr error
	batch := make([]*events.Event, 0, s.maxBatch)
	// Items ready together are emitted as one batch of at most maxBatch
	// events; an item that would overflow it starts the next batch.
	var carry *item
	for {
		var it item
		if carry != nil {
			it, carry = *carry, nil
		} else {
			var ok bool
			if it, ok = <-st.out.ch; !ok {
				break
			}
			st.out.take(it)
		}
		if emitErr != nil {
			continue // drain until the reader stops
		}
		batch = append(batch[:0], it.evs...)
		ack, ntx := it.ack, it.txs
	merge:
		for len(batch) < s.maxBatch {
			select {
			case more, ok := <-st.out.ch:
				if !ok {
					break merge
				}
				st.out.take(more)
				if len(batch)+len(more.evs) > s.maxBatch {
					carry = &more
					break merge
				}
				batch = append(batch, more.evs...)
				if more.ack > 0 {
					ack = more.ack
				}
				ntx += more.txs
			default:
				break merge
			}
		}
		if len(batch) > 0 {
			if err := emit.Emit(ctx, batch); err != nil {
				emitErr = err
				cancel()
				continue
			}
			st.events.Add(uint64(len(batch)))
		}
		txs.Add(uint64(ntx))
		if ack > 0 {
			st.acked.Store(uint64(ack))
			confirmed.Set(float64(ack))
		}
	}
	rerr := <-errc
	cancel()
	<-hbDone
	// Confirm what was acknowledged after the reader stopped.
	if rerr == nil && emitErr == nil && !conn.IsClosed() {
		fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = st.sendStatus(fctx, true)
		fcancel()
	}
	if emitErr != nil {
		if ctx.Err() != nil {
			return nil
		}
		return emitErr
	}
	select {
	case err := <-incErr:
		if ctx.Err() == nil {
			return err
		}
	default:
	}
	if rerr != nil && ctx.Err() == nil {
		return rerr
	}
	return nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func serverMajor(conn *pgconn.PgConn) int {
	v := conn.ParameterStatus("server_version")
	if i := strings.IndexAny(v, ". "); i > 0 {
		v = v[:i]
	}
	n, _ := strconv.Atoi(v)
	return n
}

// heartbeat writes a non-transactional logical message when the database
// was quiet for an interval, so that the walsender has something to send
// and the slot's confirmed position advances; it also reports slot lag,
// and lets go of a watermarked snapshot's hold on the slot (inc) before
// that would cost the slot itself.
func (s *Source) heartbeat(ctx context.Context, cat *catalogConn, active *atomic.Int64, inc *incremental) {
	rt := connector.RuntimeFrom(ctx)
	lag := rt.Gauge(metricSlotLag, "Bytes of WAL between the server's current position and the slot's confirmed position.")
	beats := rt.Counter(metricHeartbeats, "Heartbeat messages written on a quiet database.")
	every := time.Duration(s.cfg.HeartbeatIntervalSecs) * time.Second
	tick := every
	if tick <= 0 || tick > statusInterval {
		tick = statusInterval
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cat.mu.Lock()
		if every > 0 && time.Since(time.Unix(0, active.Load())) >= every {
			if _, err := cat.conn.Exec(ctx, `SELECT pg_logical_emit_message(false, '`+heartbeatPrefix+`', '')`); err == nil {
				beats.Inc()
			} else if ctx.Err() == nil {
				rt.Logger().Warn("postgres-cdc: heartbeat failed", "error", err)
			}
		}
		// safe_wal_size (PostgreSQL 13+; NULL without
		// max_slot_wal_keep_size) is read through to_jsonb so that older
		// servers, which lack the column, answer too.
		var b, safe *int64
		if err := cat.conn.QueryRow(ctx, `SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint, (to_jsonb(r) ->> 'safe_wal_size')::bigint FROM pg_replication_slots r WHERE slot_name = $1`, s.cfg.SlotName).Scan(&b, &safe); err == nil && b != nil {
			lag.Set(float64(*b))
			if inc != nil && inc.holding.Load() && safe != nil && *safe < *b && inc.released.CompareAndSwap(false, true) {
				// More WAL is kept than may still be written before
				// PostgreSQL invalidates the slot: losing the slot would
				// lose changes, releasing the hold only the exactness of
				// a later restart (which then warns, see replayFrom).
				rt.Logger().Warn("postgres-cdc: the slot is near max_slot_wal_keep_size while a snapshot holds it; letting it advance (after a restart during this snapshot, rows the stream delivered may arrive again as reads)",
					"slot", s.cfg.SlotName, "lag_bytes", *b, "safe_wal_size", *safe)
			}
		}
		cat.mu.Unlock()
	}
}

// run reads the replication stream until ctx is done.
func (st *streamer) run(ctx context.Context) error {
	defer st.out.close()
	st.ticker = time.NewTicker(time.Second)
	defer st.ticker.Stop()
	// One receive deadline serves many messages (a context per message
	// costs more than decoding it); when it passes, a status update is
	// due anyway.
	var recv struct {
		ctx    context.Context
		cancel context.CancelFunc
	}
	defer func() {
		if recv.cancel != nil {
			recv.cancel()
		}
	}()
	for {
		if ctx.Err() != nil {
			return nil
		}
		if err := st.sendStatus(ctx, false); err != nil {
			return err
		}
		if recv.ctx == nil || recv.ctx.Err() != nil {
			if recv.cancel != nil {
				recv.cancel()
			}
			recv.ctx, recv.cancel = context.WithTimeout(ctx, time.Second)
		}
		raw, err := st.conn.ReceiveMessage(recv.ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if pgconn.Timeout(err) {
				recv.ctx = nil
				continue
			}
			return fmt.Errorf("replication stream: %w", err)
		}
		switch msg := raw.(type) {
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("replication stream: %w", pgconn.ErrorResponseToPgError(msg))
		case *pgproto3.CopyData:
			if len(msg.Data) == 0 {
				continue
			}
			switch msg.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("replication stream: keepalive: %w", err)
				}
				if err := st.marker(ctx, ka.ServerWALEnd); err != nil {
					return nilIfDone(ctx, err)
				}
				if ka.ReplyRequested {
					if err := st.sendStatus(ctx, true); err != nil {
						return err
					}
				}
			case pglogrepl.XLogDataByteID:
				xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("replication stream: %w", err)
				}
				if err := st.handle(ctx, xld.WALStart, xld.WALData); err != nil {
					return nilIfDone(ctx, err)
				}
			}
		}
	}
}

func nilIfDone(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// marker lets the slot advance to lsn when nothing is in flight: no open
// transaction and no spooled streamed transaction. It goes through the
// same queue as events, so it is confirmed only after them.
func (st *streamer) marker(ctx context.Context, lsn pglogrepl.LSN) error {
	if st.inTx || len(st.spills) > 0 || lsn <= st.lastMarker || lsn <= st.committed {
		return nil
	}
	st.lastMarker = lsn
	st.committed = lsn
	return st.push(ctx, item{ack: lsn})
}

// push hands an item to the emitting goroutine, keeping the connection
// alive with status updates while it waits (back-pressure).
func (st *streamer) push(ctx context.Context, it item) error {
	if st.inc != nil {
		it.ack = st.inc.holdAck(it.ack, len(it.evs) > 0)
	}
	return st.out.put(ctx, it, st.ticker.C, func() error { return st.sendStatus(ctx, false) })
}

// sendStatus reports the acknowledged LSN as written, flushed and
// applied: the slot keeps everything after it.
func (st *streamer) sendStatus(ctx context.Context, force bool) error {
	a := pglogrepl.LSN(st.acked.Load())
	if !force && a == st.lastSent && time.Since(st.lastStatus) < statusInterval {
		return nil
	}
	err := pglogrepl.SendStandbyStatusUpdate(ctx, st.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: a, WALFlushPosition: a, WALApplyPosition: a, ClientTime: time.Now(),
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("send standby status update: %w", err)
	}
	st.lastSent, st.lastStatus = a, time.Now()
	return nil
}

// handle decodes one pgoutput message.
func (st *streamer) handle(ctx context.Context, walStart pglogrepl.LSN, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	if st.inStream && !isStreamControl(data[0]) {
		sp := st.spills[st.streamXid]
		if len(data) < 5 {
			return fmt.Errorf("replication stream: short in-stream message %q", data[0])
		}
		return sp.write(binary.BigEndian.Uint32(data[1:5]), walStart, data)
	}
	msg, err := pglogrepl.ParseV2(data, false)
	if err != nil {
		return fmt.Errorf("replication stream: decode %q message: %w", data[0], err)
	}
	switch m := msg.(type) {
	case *pglogrepl.StreamStartMessageV2:
		st.inStream, st.streamXid = true, m.Xid
		if st.spills[m.Xid] == nil {
			sp, err := newSpill(st.spoolDir, m.Xid)
			if err != nil {
				return err
			}
			st.spills[m.Xid] = sp
		}
		return nil
	case *pglogrepl.StreamStopMessageV2:
		st.inStream = false
		if sp := st.spills[st.streamXid]; sp != nil {
			return sp.w.Flush()
		}
		return nil
	case *pglogrepl.StreamAbortMessageV2:
		sp := st.spills[m.Xid]
		if sp == nil {
			return nil
		}
		if m.SubXid == m.Xid || m.SubXid == 0 {
			sp.remove()
			delete(st.spills, m.Xid)
			return nil
		}
		return sp.abortSub(m.SubXid)
	case *pglogrepl.StreamCommitMessageV2:
		return st.replay(ctx, m)
	}
	return st.dispatch(ctx, walStart, msg)
}

func isStreamControl(b byte) bool {
	switch pglogrepl.MessageType(b) {
	case pglogrepl.MessageTypeStreamStart, pglogrepl.MessageTypeStreamStop, pglogrepl.MessageTypeStreamCommit, pglogrepl.MessageTypeStreamAbort:
		return true
	}
	return false
}

// dispatch handles a transactional (or non-transactional message) pgoutput
// message, read live or replayed from a spool.
func (st *streamer) dispatch(ctx context.Context, walStart pglogrepl.LSN, msg pglogrepl.Message) error {
	switch m := msg.(type) {
	case *pglogrepl.BeginMessage:
		st.begin(m.Xid, m.FinalLSN, m.CommitTime)
	case *pglogrepl.CommitMessage:
		return st.commit(ctx, m.TransactionEndLSN)
	case *pglogrepl.RelationMessageV2:
		return st.relation(ctx, &m.RelationMessage)
	case *pglogrepl.RelationMessage:
		return st.relation(ctx, m)
	case *pglogrepl.InsertMessageV2:
		return st.change(ctx, walStart, events.Insert, m.RelationID, 0, nil, m.Tuple)
	case *pglogrepl.UpdateMessageV2:
		return st.change(ctx, walStart, events.Update, m.RelationID, m.OldTupleType, m.OldTuple, m.NewTuple)
	case *pglogrepl.DeleteMessageV2:
		return st.change(ctx, walStart, events.Delete, m.RelationID, m.OldTupleType, m.OldTuple, nil)
	case *pglogrepl.TruncateMessageV2:
		return st.truncate(ctx, walStart, &m.TruncateMessage)
	case *pglogrepl.LogicalDecodingMessageV2:
		if !m.Transactional && m.Prefix == heartbeatPrefix {
			return st.marker(ctx, m.LSN)
		}
		if m.Prefix == watermarkPrefix && st.inc != nil {
			return st.inc.watermark(ctx, st, string(m.Content))
		}
		if m.Prefix == signalPrefix && st.inc != nil && st.mute == 0 {
			// (A muted signal was handled before the restart: the
			// stored progress has it.)
			st.inc.signal(ctx, st, m.Content)
		}
	}
	return nil
}

func (st *streamer) begin(xid uint32, final pglogrepl.LSN, commit time.Time) {
	st.inTx = true
	st.xidN = xid
	st.xid = strconv.FormatUint(uint64(xid), 10)
	st.finalLSN = final
	if st.mute != 0 && final >= st.mute {
		// Transactions from here on were not emitted before the restart.
		st.log.Info("postgres-cdc: reached the stored position; emitting again", "position", lsnString(st.mute), "delivered_keys", st.inc.deliveredKeys())
		st.mute = 0
	}
	ct := commit.UTC()
	st.commitTime = &ct
	st.n = 0
	st.txCounts = st.txCounts[:0]
}

// commit ends a transaction: its last event carries the committed
// position and the end LSN goes along to be confirmed after delivery.
func (st *streamer) commit(ctx context.Context, end pglogrepl.LSN) error {
	st.inTx = false
	st.committed = end
	if st.lastMarker < end {
		st.lastMarker = end
	}
	if st.mute != 0 {
		// Emitted before the restart: only its keys were wanted.
		st.pending = st.pending[:0]
		return st.push(ctx, item{ack: end})
	}
	if st.s.cfg.ProvideTransactionMetadata && st.n > 0 {
		st.pending = append(st.pending, st.boundary(true))
	}
	evs := st.pending
	st.pending = nil
	if len(evs) > 0 {
		evs[len(evs)-1].Metadata.Position = streamPosition(st.posBuf, end, 0, 0, st.incSfx)
	}
	return st.push(ctx, item{evs: evs, ack: end, txs: 1})
}

// countChange counts a change of r in the transaction and, with
// provide_transaction_metadata, numbers e among its table's changes
// (Debezium's data_collection_order). It runs for skipped changes too,
// so that the numbers and the END record's counts do not depend on where
// the stream resumed.
func (st *streamer) countChange(r *relation) uint64 {
	name := r.schema + "." + r.name
	for i := range st.txCounts {
		if st.txCounts[i].Collection == name {
			st.txCounts[i].Count++
			return st.txCounts[i].Count
		}
	}
	st.txCounts = append(st.txCounts, events.CollectionCount{Collection: name, Count: 1})
	return 1
}

// transactionMeta stamps a change with data_collection_order and puts a
// BEGIN before the transaction's first change (a BEGIN of a transaction
// resumed after its first change was delivered before the restart).
func (st *streamer) transactionMeta(e *events.Event, order uint64) {
	if st.n == 1 {
		st.pending = append(st.pending, st.boundary(false))
	}
	e.Metadata.Set(events.MetaCollectionOrder, json.RawMessage(strconv.FormatUint(order, 10)))
}

// boundary builds the BEGIN (end false) or END state event of the
// current transaction. A BEGIN resumes before the transaction's first
// change, an END after the commit (commit gives the last event of a
// transaction that position).
func (st *streamer) boundary(end bool) *events.Event {
	e := st.s.newEvent(events.State, "", "_state", *st.commitTime, st.commitTime, false)
	e.Namespace = nil
	e.Source.Schema, e.Source.Table = "", ""
	e.Source.Commit = lsnString(st.finalLSN)
	e.Metadata.TransactionID = st.xid
	e.Metadata.Position = streamPosition(st.posBuf, st.finalLSN-1, st.finalLSN, 0, st.incSfx)
	e.Metadata.Set(events.MetaControl, json.RawMessage(`"`+events.MetaControlTransaction+`"`))
	id := events.DebeziumTransactionID(st.xid, lsnString(st.finalLSN))
	var total uint64
	for _, c := range st.txCounts {
		total += c.Count
	}
	e.Data = events.RawPayload(events.AppendTransactionRecord(nil, end, id, *st.commitTime, total, st.txCounts))
	e.Key = events.AppendJSONString([]byte(`{"id":`), id)
	e.Key = append(e.Key, '}')
	return e
}

func (st *streamer) flushPending(ctx context.Context) error {
	if len(st.pending) < st.s.maxBatch {
		return nil
	}
	evs := st.pending
	st.pending = make([]*events.Event, 0, st.s.maxBatch)
	return st.push(ctx, item{evs: evs})
}

// relation records a table description; a new or changed one produces
// a schema event (in the transaction that first uses it).
func (st *streamer) relation(ctx context.Context, m *pglogrepl.RelationMessage) error {
	r := &relation{schema: m.Namespace, name: m.RelationName, identity: m.ReplicaIdentity}
	r.captured = st.s.capture.match(r.schema, r.name)
	for _, c := range m.Columns {
		r.cols = append(r.cols, relCol{name: c.Name, oid: c.DataType, flags: c.Flags, typmod: c.TypeModifier})
	}
	if !r.captured {
		// Filtered out by schemas/tables: its changes are skipped.
		st.rels[m.RelationID] = r
		return nil
	}
	old := st.rels[m.RelationID]
	if st.inc != nil && old != nil && !sameColumns(old.cols, r.cols) {
		// Rows read in the open window may have the old shape.
		st.inc.invalidate(r.schema, r.name)
	}
	if old != nil && old.captured && sameColumns(old.cols, r.cols) && old.identity == r.identity {
		r.keep, r.keyIdx, r.pk, r.columns, r.si, r.announce = old.keep, old.keyIdx, old.pk, old.columns, old.si, old.announce
		st.rels[m.RelationID] = r
		return nil
	}
	pk, typeNames, notNull, err := st.describe(ctx, r)
	if err != nil {
		return err
	}
	r.pk = map[int]bool{}
	for _, k := range pk {
		for i, c := range r.cols {
			if c.name == k {
				r.keyIdx = append(r.keyIdx, i)
				r.pk[i] = true
			}
		}
	}
	if len(r.keyIdx) != len(pk) || len(pk) == 0 {
		r.keyIdx, r.pk = nil, map[int]bool{}
		if r.identity == 'i' {
			// REPLICA IDENTITY USING INDEX: the flagged columns are the key.
			for i, c := range r.cols {
				if c.flags&1 != 0 {
					r.keyIdx = append(r.keyIdx, i)
					r.pk[i] = true
				}
			}
		}
	}
	full := r.schema + "." + r.name
	r.keep = make([]bool, len(r.cols))
	for i, c := range r.cols {
		r.keep[i] = st.s.keepColumn(full, c.name, r.pk[i])
	}
	st.rels[m.RelationID] = r
	si := schemaInfo{Schema: r.schema, Table: r.name, PrimaryKey: pk, ReplicaIdentity: identityName(r.identity)}
	if si.PrimaryKey == nil {
		si.PrimaryKey = []string{}
	}
	for i, c := range r.cols {
		if r.keep[i] {
			nullable := !notNull[c.name]
			si.Columns = append(si.Columns, schemaColumn{Name: c.name, Type: typeNames[i], OID: c.oid, Key: r.pk[i], Nullable: &nullable})
		}
	}
	r.columns = columnTypes(si.Columns)
	r.si = si
	r.announce = true
	if st.mute == 0 {
		st.announce(r, st.n)
	}
	return nil
}

// announce emits a relation's schema event in the current transaction,
// after its first n changes (its position resumes there).
func (st *streamer) announce(r *relation, n int64) {
	r.announce = false
	ts := time.Now().UTC()
	if st.commitTime != nil {
		ts = *st.commitTime
	}
	e := st.s.schemaEventOf(r.si, streamPosition(st.posBuf, st.finalLSN-1, st.finalLSN, n, st.incSfx), lsnString(st.finalLSN), ts, st.commitTime)
	e.Metadata.TransactionID = st.xid
	st.pending = append(st.pending, e)
}

func sameColumns(a, b []relCol) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// describe looks up a relation's primary key, its column types as
// format_type writes them and its NOT NULL columns (as the snapshot's
// schema events have them).
func (st *streamer) describe(ctx context.Context, r *relation) ([]string, []string, map[string]bool, error) {
	st.cat.mu.Lock()
	defer st.cat.mu.Unlock()
	oids := make([]uint32, len(r.cols))
	mods := make([]int32, len(r.cols))
	for i, c := range r.cols {
		oids[i], mods[i] = c.oid, c.typmod
	}
	var pk, types, notNull []string
	err := st.cat.conn.QueryRow(ctx, `
SELECT COALESCE((SELECT array_agg(a.attname ORDER BY k.ord)
                   FROM pg_index i
                   JOIN pg_class c ON c.oid = i.indrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                   CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                  WHERE i.indisprimary AND n.nspname = $1 AND c.relname = $2), '{}')::text[],
       COALESCE((SELECT array_agg(format_type(t.o, t.m) ORDER BY t.ord)
                   FROM unnest($3::oid[], $4::int4[]) WITH ORDINALITY AS t(o, m, ord)), '{}')::text[],
       COALESCE((SELECT array_agg(a.attname)
                   FROM pg_attribute a
                   JOIN pg_class c ON c.oid = a.attrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull), '{}')::text[]`,
		r.schema, r.name, oids, mods).Scan(&pk, &types, &notNull)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("describe %s.%s: %w", r.schema, r.name, err)
	}
	if len(types) != len(r.cols) {
		types = make([]string, len(r.cols))
		for i, c := range r.cols {
			types[i] = st.types.typeName(c.oid)
		}
	}
	nn := make(map[string]bool, len(notNull))
	for _, c := range notNull {
		nn[c] = true
	}
	return pk, types, nn, nil
}

// position is the position of the change being emitted now. It names
// the transaction by its commit LSN and the change by its index in it,
// and resumes just before that commit (every transaction committed
// earlier was emitted, as transactions arrive in commit order), so the
// same change has the same position however the stream was resumed.
func (st *streamer) position() string {
	return streamPosition(st.posBuf, st.finalLSN-1, st.finalLSN, st.n, st.incSfx)
}

// stamp fills what every change of the current transaction carries: the
// transaction id, the change's index in it, its position, and the commit
// and last committed LSNs in the source block.
func (st *streamer) stamp(e *events.Event, walStart pglogrepl.LSN) {
	e.Metadata.TransactionID = st.xid
	seq := uint64(st.n)
	e.Metadata.Sequence = &seq
	e.Metadata.Position = st.position()
	e.Source.Position = lsnString(walStart)
	e.Source.Commit = lsnString(st.finalLSN)
	if st.committed != 0 {
		e.Source.LastCommit = lsnString(st.committed)
	}
}

// skip reports whether the change just counted was already delivered
// before a restart (the engine's position named this transaction).
func (st *streamer) skip() bool {
	return st.skipTx != 0 && st.finalLSN == st.skipTx && st.n <= st.skipN
}

func (st *streamer) change(ctx context.Context, walStart pglogrepl.LSN, typ events.Type, relID uint32, oldType uint8, old, nu *pglogrepl.TupleData) error {
	r := st.rels[relID]
	if r == nil {
		return fmt.Errorf("replication stream: change for unknown relation %d", relID)
	}
	if !r.captured {
		return nil
	}
	if st.inc != nil {
		st.inc.changed(r, typ, st.xidN, st.finalLSN, oldType, old, nu)
	}
	st.n++
	order := st.countChange(r)
	st.active.Store(time.Now().UnixNano())
	if st.skip() || st.mute != 0 {
		return nil
	}
	if r.announce {
		st.announce(r, st.n-1)
	}
	e := st.s.newEvent(typ, r.schema, r.name, *st.commitTime, st.commitTime, false)
	e.Source.Columns = r.columns
	st.stamp(e, walStart)
	if st.s.cfg.ProvideTransactionMetadata {
		st.transactionMeta(e, order)
	}

	var buf []byte
	var unchanged []string
	var oldTuple *pglogrepl.TupleData
	if oldType == 'O' {
		oldTuple = old // full old row (REPLICA IDENTITY FULL)
	}
	switch typ {
	case events.Insert:
		buf, _ = st.appendTuple(nil, r, nu, nil, false)
		e.Key = st.appendKey(r, nu, nil)
	case events.Update:
		buf = append(buf, `{"before":`...)
		switch {
		case old != nil:
			buf, _ = st.appendTuple(buf, r, old, nil, oldType == 'K')
		case len(r.keyIdx) > 0 && r.identity != 'n':
			// The key did not change, so PostgreSQL sent no old tuple:
			// before carries the key columns (REPLICA IDENTITY DEFAULT
			// or INDEX), as Debezium's update events do. Flink's
			// debezium-json rejects an update whose before is null.
			buf = append(buf, st.appendKey(r, nu, nil)...)
		default:
			buf = append(buf, "null"...)
		}
		buf = append(buf, `,"after":`...)
		buf, unchanged = st.appendTuple(buf, r, nu, oldTuple, false)
		buf = append(buf, '}')
		e.Key = st.appendKey(r, nu, old)
	case events.Delete:
		if old == nil {
			buf = append(buf, "null"...)
		} else {
			buf, _ = st.appendTuple(nil, r, old, nil, oldType == 'K')
		}
		e.Key = st.appendKey(r, old, nil)
	}
	e.Data = events.RawPayload(buf)
	if len(unchanged) > 0 {
		b, _ := json.Marshal(unchanged)
		e.Metadata.Set("unchanged_toast_columns", b)
	}
	st.pending = append(st.pending, e)
	return st.flushPending(ctx)
}

// appendTuple renders a tuple as a JSON object. keyOnly renders only the
// replica identity columns (a 'K' old tuple carries nothing else).
// Unchanged TOAST values ('u') are taken from fallback (the old row under
// REPLICA IDENTITY FULL) or left out and returned by name.
func (st *streamer) appendTuple(dst []byte, r *relation, t *pglogrepl.TupleData, fallback *pglogrepl.TupleData, keyOnly bool) ([]byte, []string) {
	if t == nil {
		return append(dst, "null"...), nil
	}
	var unchanged []string
	dst = append(dst, '{')
	first := true
	for i, c := range t.Columns {
		if i >= len(r.cols) || !r.keep[i] {
			continue
		}
		if keyOnly && r.cols[i].flags&1 == 0 {
			continue
		}
		col := c
		if c.DataType == pglogrepl.TupleDataTypeToast {
			if fallback != nil && i < len(fallback.Columns) && fallback.Columns[i].DataType != pglogrepl.TupleDataTypeToast {
				col = fallback.Columns[i]
			} else {
				unchanged = append(unchanged, r.cols[i].name)
				continue
			}
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = events.AppendJSONString(dst, r.cols[i].name)
		dst = append(dst, ':')
		dst = st.appendColumn(dst, r.cols[i].oid, col)
	}
	return append(dst, '}'), unchanged
}

func (st *streamer) appendColumn(dst []byte, oid uint32, c *pglogrepl.TupleDataColumn) []byte {
	switch c.DataType {
	case pglogrepl.TupleDataTypeText:
		return st.types.appendValue(dst, oid, c.Data)
	case pglogrepl.TupleDataTypeBinary:
		return events.AppendJSONString(dst, c.Data)
	}
	return append(dst, "null"...)
}

// appendKey renders the key columns from t (falling back to alt, the old
// key, for columns t does not carry).
func (st *streamer) appendKey(r *relation, t, alt *pglogrepl.TupleData) []byte {
	if len(r.keyIdx) == 0 || t == nil {
		return nil
	}
	dst := []byte{'{'}
	for j, i := range r.keyIdx {
		if j > 0 {
			dst = append(dst, ',')
		}
		dst = events.AppendJSONString(dst, r.cols[i].name)
		dst = append(dst, ':')
		var c *pglogrepl.TupleDataColumn
		if i < len(t.Columns) {
			c = t.Columns[i]
		}
		if (c == nil || c.DataType == pglogrepl.TupleDataTypeToast || c.DataType == pglogrepl.TupleDataTypeNull) && alt != nil && i < len(alt.Columns) {
			c = alt.Columns[i]
		}
		if c == nil {
			dst = append(dst, "null"...)
			continue
		}
		dst = st.appendColumn(dst, r.cols[i].oid, c)
	}
	return append(dst, '}')
}

func (st *streamer) truncate(ctx context.Context, walStart pglogrepl.LSN, m *pglogrepl.TruncateMessage) error {
	for _, id := range m.RelationIDs {
		r := st.rels[id]
		if r == nil || !r.captured {
			continue
		}
		if st.inc != nil {
			st.inc.invalidate(r.schema, r.name)
		}
		st.n++
		order := st.countChange(r)
		if st.skip() || st.mute != 0 {
			continue
		}
		if r.announce {
			st.announce(r, st.n-1)
		}
		e := st.s.newEvent(events.Truncate, r.schema, r.name, *st.commitTime, st.commitTime, false)
		st.stamp(e, walStart)
		if st.s.cfg.ProvideTransactionMetadata {
			st.transactionMeta(e, order)
		}
		if m.Option&pglogrepl.TruncateOptionCascade != 0 {
			e.Metadata.Set("truncate_cascade", json.RawMessage("true"))
		}
		if m.Option&pglogrepl.TruncateOptionRestartIdentity != 0 {
			e.Metadata.Set("truncate_restart_identity", json.RawMessage("true"))
		}
		st.pending = append(st.pending, e)
	}
	st.active.Store(time.Now().UnixNano())
	return st.flushPending(ctx)
}

// replay emits a streamed transaction from its spool at Stream Commit.
func (st *streamer) replay(ctx context.Context, m *pglogrepl.StreamCommitMessageV2) error {
	sp := st.spills[m.Xid]
	if sp == nil {
		// Nothing captured was spooled (or it all aborted): still a
		// commit to confirm.
		st.begin(m.Xid, m.CommitLSN, m.CommitTime)
		return st.commit(ctx, m.TransactionEndLSN)
	}
	defer func() {
		sp.remove()
		delete(st.spills, m.Xid)
	}()
	if err := sp.w.Flush(); err != nil {
		return err
	}
	if _, err := sp.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	st.begin(m.Xid, m.CommitLSN, m.CommitTime)
	rd := bufio.NewReaderSize(sp.f, 1<<20)
	var hdr [12]byte
	var data []byte
	for {
		if _, err := io.ReadFull(rd, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return fmt.Errorf("read spooled transaction: %w", err)
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		walStart := pglogrepl.LSN(binary.BigEndian.Uint64(hdr[4:]))
		if cap(data) < int(n) {
			data = make([]byte, n)
		}
		data = data[:n]
		if _, err := io.ReadFull(rd, data); err != nil {
			return fmt.Errorf("read spooled transaction: %w", err)
		}
		msg, err := pglogrepl.ParseV2(data, true)
		if err != nil {
			return fmt.Errorf("decode spooled %q message: %w", data[0], err)
		}
		if err := st.dispatch(ctx, walStart, msg); err != nil {
			return err
		}
		select {
		case <-st.ticker.C:
			if err := st.sendStatus(ctx, false); err != nil {
				return err
			}
		default:
		}
	}
	return st.commit(ctx, m.TransactionEndLSN)
}

func (st *streamer) removeSpills() {
	for xid, sp := range st.spills {
		sp.remove()
		delete(st.spills, xid)
	}
}

// spoolDir returns the slot's spool directory, emptied of what a killed
// predecessor left: only the process holding the slot (which this one now
// does) writes there, so nothing in it belongs to anyone else.
func (s *Source) spoolDir() (string, error) {
	base := s.spillDir
	if base == "" {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "rivven-pgcdc-"+s.cfg.SlotName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("spool directory: %w", err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*.spool"))
	for _, f := range old {
		_ = os.Remove(f)
	}
	return dir, nil
}

// spill is the on-disk spool of one streamed transaction: records of
// [length u32][WAL start u64][pgoutput message].
type spill struct {
	f    *os.File
	w    *bufio.Writer
	size int64
	subs map[uint32]int64 // first offset of each (sub)transaction's changes
	hdr  [12]byte
}

func newSpill(dir string, xid uint32) (*spill, error) {
	f, err := os.CreateTemp(dir, "xid-"+strconv.FormatUint(uint64(xid), 10)+"-*.spool")
	if err != nil {
		return nil, fmt.Errorf("spool streamed transaction %d: %w", xid, err)
	}
	return &spill{f: f, w: bufio.NewWriterSize(f, 1<<20), subs: map[uint32]int64{}}, nil
}

func (sp *spill) write(xid uint32, walStart pglogrepl.LSN, data []byte) error {
	if _, ok := sp.subs[xid]; !ok {
		sp.subs[xid] = sp.size
	}
	binary.BigEndian.PutUint32(sp.hdr[:4], uint32(len(data)))
	binary.BigEndian.PutUint64(sp.hdr[4:], uint64(walStart))
	if _, err := sp.w.Write(sp.hdr[:]); err != nil {
		return fmt.Errorf("spool streamed transaction: %w", err)
	}
	if _, err := sp.w.Write(data); err != nil {
		return fmt.Errorf("spool streamed transaction: %w", err)
	}
	sp.size += int64(len(sp.hdr) + len(data))
	return nil
}

// abortSub drops a rolled-back subtransaction: its changes, and those of
// subtransactions that started after it, lie after its first offset (as
// PostgreSQL's own apply worker assumes).
func (sp *spill) abortSub(subxid uint32) error {
	off, ok := sp.subs[subxid]
	if !ok {
		return nil
	}
	if err := sp.w.Flush(); err != nil {
		return err
	}
	if err := sp.f.Truncate(off); err != nil {
		return fmt.Errorf("spool: drop aborted subtransaction: %w", err)
	}
	if _, err := sp.f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	sp.w.Reset(sp.f)
	sp.size = off
	for x, o := range sp.subs {
		if o >= off {
			delete(sp.subs, x)
		}
	}
	return nil
}

func (sp *spill) remove() {
	_ = sp.f.Close()
	_ = os.Remove(sp.f.Name())
}
