// Package postgrescdc is the postgres-cdc source: change data capture from
// PostgreSQL through logical replication (pgoutput, protocol version 2).
//
// It snapshots the captured tables from the replication slot's exported
// snapshot, chunked by primary key and resumable, then streams inserts,
// updates, deletes, truncates and schema changes. A position is confirmed
// to PostgreSQL only after the events up to it were durably published, so
// the slot never lets go of WAL that was not delivered. Transactions that
// PostgreSQL streams while still in progress are spooled to a temporary
// file and emitted at their commit (dropped at their abort), so a huge
// transaction never sits in memory and never leaks uncommitted rows.
package postgrescdc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
)

// Metric names (documented in the README and the catalog).
const (
	metricSlotLag      = "postgres_cdc.slot_lag_bytes"
	metricEvents       = "postgres_cdc.events_total"
	metricTransactions = "postgres_cdc.transactions_total"
	metricSnapshotRows = "postgres_cdc.snapshot_rows_total"
	metricHeartbeats   = "postgres_cdc.heartbeats_total"
	metricConfirmedLSN = "postgres_cdc.confirmed_lsn"
)

func init() {
	catalog.RegisterSource[Config](catalog.Meta{
		Name:        "postgres-cdc",
		Aliases:     []string{"postgresql-cdc"},
		Category:    catalog.Database,
		Subcategory: "CDC",
		Description: "Change data capture from PostgreSQL via logical replication (pgoutput v2): resumable consistent snapshot, inserts/updates/deletes/truncates/schema changes, LSNs confirmed only after delivery.",
		Tags:        []string{"postgres", "postgresql", "cdc", "logical-replication", "pgoutput", "wal", "database"},
		Metrics:     []string{metricSlotLag, metricEvents, metricTransactions, metricSnapshotRows, metricHeartbeats, metricConfirmedLSN},
	}, New)
}

// Source is the postgres-cdc source.
type Source struct {
	cfg     Config
	capture tableFilter
	snap    tableFilter
	exclude []string
	cols    map[string]map[string]bool
	// maxBatch bounds the events of one streamed batch.
	maxBatch int
	// extraParams are session settings added to every connection (tests
	// lower logical_decoding_work_mem so that PostgreSQL streams
	// in-progress transactions early).
	extraParams map[string]string
	// streaming, when set, is called once replication has started (tests
	// wait for it before writing changes they expect to see streamed).
	streaming func()
	// chunkGate, when set, is called before each chunk of a snapshot read
	// alongside the stream (tests hold such a snapshot open with it, as
	// a long one would be).
	chunkGate func(ctx context.Context)
	// spillDir holds the per-slot spool directories of in-progress
	// streamed transactions ("" = the system temp dir).
	spillDir string
	// name is the source's name in the pipeline: the logical server name
	// in every event's source block (Debezium's source.name).
	name string
}

// New builds a postgres-cdc source from a config the catalog has
// validated.
func New(_ context.Context, cfg *Config) (connector.Source, error) {
	return newSource(cfg)
}

func newSource(cfg *Config) (*Source, error) {
	s := &Source{
		cfg:      *cfg,
		capture:  newFilter(cfg.Schemas, cfg.Tables),
		snap:     newFilter(nil, cfg.Snapshot.IncludeTables),
		exclude:  cfg.Snapshot.ExcludeTables,
		maxBatch: 2048,
	}
	if len(cfg.ColumnFilters) > 0 {
		s.cols = map[string]map[string]bool{}
		for t, cs := range cfg.ColumnFilters {
			m := map[string]bool{}
			for _, c := range cs {
				m[c] = true
			}
			s.cols[t] = m
		}
	}
	return s, nil
}

// keepColumn applies column_filters; key columns are always kept.
func (s *Source) keepColumn(fullName, col string, key bool) bool {
	if key || s.cols == nil {
		return true
	}
	m, ok := s.cols[fullName]
	return !ok || m[col]
}

func (s *Source) snapshotted(t *table) bool {
	return s.snap.match(t.Schema, t.Name) && !matchAny(s.exclude, t.Schema, t.Name)
}

// connect opens a regular connection.
func (s *Source) connect(ctx context.Context) (*pgx.Conn, error) {
	cc, err := s.cfg.connConfig(false)
	if err != nil {
		return nil, connector.Fatal(err)
	}
	for k, v := range s.extraParams {
		cc.RuntimeParams[k] = v
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("connect to %s database %q as %q: %w", s.cfg.addr(), s.cfg.Database, s.cfg.User, redact(err, s.cfg.Password))
	}
	return conn, nil
}

// connectReplication opens a logical replication connection.
func (s *Source) connectReplication(ctx context.Context) (*pgconn.PgConn, error) {
	cc, err := s.cfg.connConfig(true)
	if err != nil {
		return nil, connector.Fatal(err)
	}
	for k, v := range s.extraParams {
		cc.RuntimeParams[k] = v
	}
	conn, err := pgconn.ConnectConfig(ctx, &cc.Config)
	if err != nil {
		return nil, fmt.Errorf("open replication connection to %s: %w", s.cfg.addr(), redact(err, s.cfg.Password))
	}
	return conn, nil
}

// redact keeps a password out of error text (pgconn does not echo it,
// but a DSN-parsing error could).
func redact(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "[redacted]"))
}

type slotInfo struct {
	exists    bool
	plugin    string
	database  string
	confirmed pglogrepl.LSN
	active    bool
	// lost is wal_status 'lost': the slot was invalidated (its WAL went
	// past max_slot_wal_keep_size and was removed), so it can no longer
	// deliver the changes after its position; streaming from it fails.
	lost bool
}

func readSlot(ctx context.Context, conn *pgx.Conn, name string) (slotInfo, error) {
	var si slotInfo
	var confirmed *string
	err := conn.QueryRow(ctx, `SELECT COALESCE(plugin, ''), COALESCE(database, ''), confirmed_flush_lsn::text, active, COALESCE(wal_status = 'lost', false)
	                              FROM pg_replication_slots WHERE slot_name = $1`, name).
		Scan(&si.plugin, &si.database, &confirmed, &si.active, &si.lost)
	if errors.Is(err, pgx.ErrNoRows) {
		return si, nil
	}
	if err != nil {
		return si, fmt.Errorf("read replication slot %q: %w", name, err)
	}
	si.exists = true
	if confirmed != nil {
		if si.confirmed, err = pglogrepl.ParseLSN(*confirmed); err != nil {
			return si, err
		}
	}
	return si, nil
}

// ensurePublication creates the publication when allowed and missing.
func (s *Source) ensurePublication(ctx context.Context, conn *pgx.Conn) error {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, s.cfg.PublicationName).Scan(&exists); err != nil {
		return fmt.Errorf("look up publication: %w", err)
	}
	if exists {
		return nil
	}
	if !s.cfg.AutoCreatePublication {
		return connector.Fatal(fmt.Errorf("publication %q does not exist and auto_create_publication is false: run CREATE PUBLICATION %s %s, or set auto_create_publication: true",
			s.cfg.PublicationName, quoteIdent(s.cfg.PublicationName), publicationTarget(s.cfg.PublicationTables)))
	}
	_, err := conn.Exec(ctx, "CREATE PUBLICATION "+quoteIdent(s.cfg.PublicationName)+" "+publicationTarget(s.cfg.PublicationTables))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42710" { // duplicate_object: created concurrently
		return nil
	}
	if err != nil {
		return fmt.Errorf("create publication %q (needs CREATE on the database, and superuser for FOR ALL TABLES, or ownership of the tables): %w", s.cfg.PublicationName, err)
	}
	return nil
}

// capturedTables lists the published tables the config captures.
func (s *Source) capturedTables(ctx context.Context, conn *pgx.Conn) ([]*table, error) {
	all, err := listTables(ctx, conn, s.cfg.PublicationName)
	if err != nil {
		return nil, fmt.Errorf("list published tables: %w", err)
	}
	out := all[:0]
	for _, t := range all {
		if s.capture.match(t.Schema, t.Name) {
			out = append(out, t)
		}
	}
	return out, nil
}

// Read snapshots (as the snapshot mode says) and streams changes until ctx
// is done.
func (s *Source) Read(ctx context.Context, resume []byte, emit connector.Emitter) (err error) {
	pos, err := parsePosition(resume)
	if err != nil {
		return connector.Fatal(err)
	}
	rt := connector.RuntimeFrom(ctx)
	log := rt.Logger()
	s.name = rt.Name
	mode := s.cfg.Snapshot.Mode
	if pos != nil && pos.Snap == nil && mode == "initial_only" {
		log.Info("postgres-cdc: initial_only snapshot already complete; nothing to do")
		return nil
	}

	meta, err := s.connect(ctx)
	if err != nil {
		return err
	}
	cat := &catalogConn{conn: meta}
	defer cat.close(context.WithoutCancel(ctx))
	if err := s.ensurePublication(ctx, meta); err != nil {
		return err
	}
	tables, err := s.capturedTables(ctx, meta)
	if err != nil {
		return err
	}
	log.Info("postgres-cdc: captured tables", "tables", describeTables(tables), "publication", s.cfg.PublicationName)
	for _, t := range tables {
		if note := identityNote(t); note != "" {
			log.Warn("postgres-cdc: "+t.fullName()+": "+note, "table", t.fullName())
		}
	}
	types := newTypeCache(func(oid uint32) (typeInfo, error) { return lookupType(context.WithoutCancel(ctx), cat, oid) })

	if mode == "initial_only" {
		// No slot: a REPEATABLE READ snapshot is consistent by itself,
		// and nothing streams afterwards.
		lsn := pglogrepl.LSN(0)
		st := &snapState{At: map[string][]*string{}}
		if pos != nil && pos.Snap != nil {
			lsn, st = pos.LSN, pos.Snap
		} else {
			var cur string
			if err := meta.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&cur); err != nil {
				return fmt.Errorf("read the current WAL position: %w", err)
			}
			lsn, _ = pglogrepl.ParseLSN(cur)
		}
		return s.snapshot(ctx, emit, types, tables, lsn, st, "")
	}

	slot, err := s.usableSlot(ctx, meta, cat, log, mode, pos)
	if err != nil {
		return err
	}

	repl, err := s.connectReplication(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = repl.Close(context.WithoutCancel(ctx)) }()

	// Watermarks are logical decoding messages, which pgoutput sends
	// from protocol 2 on (PostgreSQL 14).
	watermarks := serverMajor(repl) >= 14
	plan, err := s.planRead(ctx, repl, log, mode, pos, slot, watermarks)
	if err != nil {
		return err
	}
	startLSN, incState := plan.startLSN, plan.incState

	switch {
	case mode == "no_data" && pos == nil:
		if err := s.emitSchemas(ctx, emit, tables, streamPosition(nil, startLSN, 0, 0), startLSN); err != nil {
			return err
		}
	case plan.rebuildSchemas:
		// The stored position itself, so that a crash right after them
		// resumes exactly where the stream was (mid-transaction too).
		log.Info("postgres-cdc: snapshot.mode recovery: re-emitting the schema of every captured table, then streaming from the stored position", "tables", len(tables), "position", lsnString(pos.LSN))
		if err := s.emitSchemas(ctx, emit, tables, string(resume), pos.LSN); err != nil {
			return err
		}
	}
	if plan.doSnapshot {
		if err := s.snapshot(ctx, emit, types, tables, startLSN, plan.snapSt, plan.exportedName); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
	resumeTx := position{}
	if pos != nil && pos.Snap == nil {
		resumeTx = *pos
	}
	var inc *incremental
	if watermarks {
		rows := rt.Counter(metricSnapshotRows, "Rows read by snapshots.")
		if !plan.incRun {
			incState.At, incState.Done, incState.Since = map[string][]*string{}, nil, nil
		}
		var mute pglogrepl.LSN
		if plan.incRun {
			startLSN, mute = s.replayFrom(log, incState, startLSN, slot)
		}
		inc = newIncremental(s, types, incState, tables, rows, plan.incRun, startLSN, mute)
	}
	// Never report less than the slot already confirmed: PostgreSQL would
	// move confirmed_flush_lsn back.
	floor := max(startLSN, slot.confirmed)
	err = s.stream(ctx, emit, repl, cat, types, startLSN, floor, resumeTx, inc)
	if err == nil && ctx.Err() != nil && s.cfg.DropSlotOnStop {
		_ = repl.Close(context.WithoutCancel(ctx))
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if derr := dropSlot(dctx, cat, s.cfg.SlotName); derr != nil {
			log.Warn("postgres-cdc: drop_slot_on_stop: could not drop the slot", "slot", s.cfg.SlotName, "error", derr)
		} else {
			log.Info("postgres-cdc: dropped replication slot on stop", "slot", s.cfg.SlotName)
		}
	}
	return err
}

// replayFrom is where a stream with a watermarked snapshot under way
// starts: at the lowest since of its tables when that lies before start
// (the stored position) and the slot still has the WAL from there, so
// that the stream learns again which rows it delivered since each
// table's snapshot began, emitting nothing before start (mute = start).
// The slot was confirmed no further than that since (incremental.hold),
// so it has the WAL unless something else moved it on; then those keys
// are lost and the tables' since becomes start.
func (s *Source) replayFrom(log *slog.Logger, st *snapState, start pglogrepl.LSN, slot slotInfo) (from, mute pglogrepl.LSN) {
	since := st.sinceMin()
	if len(st.Since) == 0 || since >= start {
		return start, 0
	}
	if since != 0 && slot.exists && slot.confirmed <= since {
		log.Info("postgres-cdc: resuming a snapshot read alongside the stream; reading the WAL since the snapshot began without emitting, to know which rows the stream already delivered",
			"snapshot_since", lsnString(since), "position", lsnString(start))
		return since, start
	}
	log.Warn("postgres-cdc: the slot no longer has the WAL since the snapshot began; rows the stream delivered before this restart may arrive again as snapshot reads",
		"snapshot_since", lsnString(since), "slot_confirmed", lsnString(slot.confirmed), "position", lsnString(start))
	for name := range st.Since {
		st.Since[name] = lsnString(start)
	}
	return start, 0
}

// usableSlot reads the replication slot and makes it usable for mode:
// it refuses a slot of another plugin or database, or one whose loss
// would drop changes the mode promises, and drops an invalidated slot (or,
// for recovery without a stored position, an existing one) so that it is
// created anew.
func (s *Source) usableSlot(ctx context.Context, meta *pgx.Conn, cat *catalogConn, log *slog.Logger, mode string, pos *position) (slotInfo, error) {
	slot, err := readSlot(ctx, meta, s.cfg.SlotName)
	if err != nil {
		return slotInfo{}, err
	}
	if slot.exists && slot.plugin != "pgoutput" {
		return slotInfo{}, connector.Fatal(fmt.Errorf("replication slot %q uses plugin %q, not pgoutput: drop it or choose another slot_name", s.cfg.SlotName, slot.plugin))
	}
	if slot.exists && slot.database != s.cfg.Database {
		return slotInfo{}, connector.Fatal(fmt.Errorf("replication slot %q belongs to database %q, not %q: choose another slot_name", s.cfg.SlotName, slot.database, s.cfg.Database))
	}
	if !slot.exists && !s.cfg.AutoCreateSlot {
		return slotInfo{}, connector.Fatal(fmt.Errorf("replication slot %q does not exist and auto_create_slot is false: run SELECT pg_create_logical_replication_slot('%s', 'pgoutput'), or set auto_create_slot: true", s.cfg.SlotName, s.cfg.SlotName))
	}
	// Modes that may go on when the changes after a stored streaming
	// position are gone (initial refuses: it promises them).
	lossOK := mode == "when_needed" || mode == "recovery" || mode == "always" || mode == "never" || mode == "no_data"
	if slot.exists && slot.lost {
		if pos != nil && pos.Snap == nil && !lossOK {
			return slotInfo{}, connector.Fatal(fmt.Errorf("replication slot %q was invalidated (PostgreSQL removed its WAL, see max_slot_wal_keep_size), so the changes after position %s are lost: set snapshot.mode to recovery or when_needed (re-snapshot) or never (continue without them)", s.cfg.SlotName, lsnString(pos.LSN)))
		}
		if !s.cfg.AutoCreateSlot {
			return slotInfo{}, connector.Fatal(fmt.Errorf("replication slot %q was invalidated (PostgreSQL removed its WAL) and auto_create_slot is false: drop and create it again, or set auto_create_slot: true", s.cfg.SlotName))
		}
		// Nothing can be read from it any more: make it anew, as if it
		// had been dropped.
		// Loud: the changes between the stored position and now are
		// gone from the stream; what replaces them is the mode's choice.
		args := []any{"slot", s.cfg.SlotName, "snapshot_mode", mode}
		if pos != nil {
			args = append(args, "position", lsnString(pos.LSN))
		}
		log.Warn("postgres-cdc: replication slot was invalidated (PostgreSQL removed its WAL past max_slot_wal_keep_size), so the changes after its position are lost from the stream; dropping the slot to create it again", args...)
		if err := dropSlot(ctx, cat, s.cfg.SlotName); err != nil {
			return slotInfo{}, fmt.Errorf("drop invalidated replication slot %q: %w", s.cfg.SlotName, err)
		}
		slot = slotInfo{}
	}
	if mode == "recovery" && slot.exists && pos == nil && s.cfg.AutoCreateSlot {
		// No stored position (a first start, or the pipeline's positions
		// were lost) on a slot that exists: what it has confirmed says
		// nothing about what downstream has. Rebuild from scratch with a
		// slot whose exported snapshot is exactly its start, so that the
		// snapshot and the stream meet without a duplicate.
		log.Warn("postgres-cdc: snapshot.mode recovery without a stored position: dropping the existing replication slot to snapshot from a new one", "slot", s.cfg.SlotName)
		if err := dropSlot(ctx, cat, s.cfg.SlotName); err != nil {
			return slotInfo{}, fmt.Errorf("drop replication slot %q for recovery (is another consumer using it?): %w", s.cfg.SlotName, err)
		}
		slot = slotInfo{}
	}
	if !slot.exists && pos != nil && pos.Snap == nil && !lossOK {
		return slotInfo{}, connector.Fatal(fmt.Errorf("replication slot %q no longer exists, so the changes after position %s are lost: set snapshot.mode to recovery or when_needed (re-snapshot) or never (continue without them), or restore the slot", s.cfg.SlotName, lsnString(pos.LSN)))
	}
	return slot, nil
}

// readPlan is where a Read starts: what it snapshots first, what it
// reads alongside the stream, and the stream's first position.
type readPlan struct {
	startLSN pglogrepl.LSN
	// incState is the progress of a snapshot read alongside the stream
	// (empty: none yet; tables may be signalled later); incRun says one
	// is under way.
	incState *snapState
	incRun   bool
	// doSnapshot: a snapshot from the slot's exported snapshot
	// (exportedName) or, before PostgreSQL 14, a separate one, from
	// snapSt's progress.
	doSnapshot   bool
	snapSt       *snapState
	exportedName string
	// rebuildSchemas: recovery on a usable slot re-emits every table's
	// schema event (the history downstream may have lost) before
	// streaming on.
	rebuildSchemas bool
}

// planRead decides what to snapshot and where streaming starts, creating
// the slot when there is none.
func (s *Source) planRead(ctx context.Context, repl *pgconn.PgConn, log *slog.Logger, mode string, pos *position, slot slotInfo, watermarks bool) (readPlan, error) {
	var (
		incState       = &snapState{At: map[string][]*string{}}
		incRun         bool
		doSnapshot     bool
		snapSt         = &snapState{At: map[string][]*string{}}
		startLSN       pglogrepl.LSN
		exportedName   string
		rebuildSchemas bool
	)
	switch {
	case mode == "never" || mode == "no_data":
		if pos != nil {
			startLSN = pos.LSN
			if !slot.exists {
				log.Warn("postgres-cdc: replication slot is gone; continuing from a new slot without the changes made meanwhile (snapshot.mode "+mode+")", "slot", s.cfg.SlotName, "position", lsnString(pos.LSN))
			}
			if pos.Inc != nil {
				// A snapshot requested while streaming goes on after a
				// restart, as in the other modes.
				incState, incRun = pos.Inc, true
			}
		}
	case pos != nil && pos.Snap != nil && slot.exists:
		// Resume an interrupted snapshot: its exported snapshot died with
		// the old connection, and the slot still sits at the consistent
		// point. The remaining chunks are read alongside the stream from
		// there, reconciled with it by watermarks, so that no row arrives
		// both from the stream and as an older snapshot read, and none the
		// stream delivered since this point is read again (incremental).
		startLSN, incState, incRun = pos.LSN, pos.Snap, true
		if !watermarks {
			doSnapshot, snapSt = true, pos.Snap
		}
	case pos != nil && pos.Snap == nil && slot.exists && mode != "always":
		startLSN = pos.LSN
		rebuildSchemas = mode == "recovery"
		if pos.Inc != nil {
			incState, incRun = pos.Inc, true // a watermarked snapshot goes on
		}
	default:
		doSnapshot = true
		if pos != nil && !slot.exists {
			log.Warn("postgres-cdc: replication slot is gone; taking a new snapshot", "slot", s.cfg.SlotName)
		}
	}

	if !slot.exists {
		action := "NOEXPORT_SNAPSHOT"
		if doSnapshot {
			action = "EXPORT_SNAPSHOT"
		}
		res, err := pglogrepl.CreateReplicationSlot(ctx, repl, s.cfg.SlotName, "pgoutput",
			pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: action})
		if err != nil {
			return readPlan{}, fmt.Errorf("create replication slot %q (needs the REPLICATION attribute and a free max_replication_slots entry): %w", s.cfg.SlotName, err)
		}
		lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
		if err != nil {
			return readPlan{}, err
		}
		startLSN = lsn
		exportedName = res.SnapshotName
		log.Info("postgres-cdc: created replication slot", "slot", s.cfg.SlotName, "consistent_point", res.ConsistentPoint)
	} else if doSnapshot && (pos == nil || pos.Snap == nil) {
		// A fresh snapshot on an existing slot (first start with a slot
		// made elsewhere, or mode always): stream from the slot's
		// confirmed position and read the tables alongside, reconciled
		// by watermarks. (Before PostgreSQL 14: a separate snapshot, and
		// changes between the slot's position and it are delivered
		// twice, snapshot row then the change.)
		startLSN = slot.confirmed
		if watermarks {
			doSnapshot = false
			incRun = true
		}
	}
	return readPlan{startLSN: startLSN, incState: incState, incRun: incRun, doSnapshot: doSnapshot, snapSt: snapSt,
		exportedName: exportedName, rebuildSchemas: rebuildSchemas}, nil
}

func dropSlot(ctx context.Context, cat *catalogConn, name string) error {
	cat.mu.Lock()
	defer cat.mu.Unlock()
	// The walsender may take a moment to release the slot after the
	// replication connection closed.
	var err error
	for range 50 {
		_, err = cat.conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, name)
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return err
}

// lookupType asks pg_type how to render a type pgtype does not know:
// enums and other non-array types become strings, arrays use their
// element type, domains their base type.
func lookupType(ctx context.Context, cat *catalogConn, oid uint32) (typeInfo, error) {
	cat.mu.Lock()
	defer cat.mu.Unlock()
	var name string
	var typtype, category string
	var elem, base uint32
	err := cat.conn.QueryRow(ctx, `SELECT typname, typtype::text, typcategory::text, typelem, typbasetype FROM pg_type WHERE oid = $1`, oid).
		Scan(&name, &typtype, &category, &elem, &base)
	if err != nil {
		return typeInfo{}, err
	}
	switch {
	case typtype == "d" && base != 0:
		if k, ok := builtin[base]; ok {
			return typeInfo{kind: k, name: name}, nil
		}
		return typeInfo{kind: kString, name: name}, nil
	case category == "A" && elem != 0:
		return typeInfo{kind: kArray, elem: elem, name: name}, nil
	}
	return typeInfo{kind: kString, name: name}, nil
}

// emitSchemas emits one schema event per table (snapshot modes no_data
// and recovery), all at position posStr.
func (s *Source) emitSchemas(ctx context.Context, emit connector.Emitter, tables []*table, posStr string, lsn pglogrepl.LSN) error {
	if len(tables) == 0 {
		return nil
	}
	batch := make([]*events.Event, 0, len(tables))
	for _, t := range tables {
		batch = append(batch, s.schemaEvent(t, posStr, lsnString(lsn), time.Now().UTC()))
	}
	return emit.Emit(ctx, batch)
}
