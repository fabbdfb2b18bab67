package postgrescdc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/spec"
	"github.com/rivven/rivven-connect/shared/testenv"
)

const pgAddr = "127.0.0.1:5432"

// serverUsable is the source's own Check against the test server, so a
// server without logical decoding fails the package once, saying what to
// change, instead of every test timing out.
func serverUsable() error {
	cfg, ps := spec.DecodeString[Config]("host: 127.0.0.1\nport: 5432\ndatabase: test\nuser: postgres\npassword: \"\"\nslot_name: rivven_usable_probe\npublication_name: rivven_usable_probe\ntls:\n  mode: disable\n", "config")
	if len(ps) > 0 {
		return fmt.Errorf("probe config: %v", spec.Problems(ps))
	}
	s, err := newSource(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.Check(ctx)
}

// harness gives a test its own slot, publication and tables (all named
// after h.name) and removes them afterwards.
type harness struct {
	t    *testing.T
	db   *pgx.Conn
	name string
	// port and database are the server's the sources connect to (the
	// shared one, or a private one of the test).
	port     int
	database string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	testenv.RequireService(t, "postgres", pgAddr)
	return newHarnessAt(t, "postgres://postgres@"+pgAddr+"/test?sslmode=disable")
}

// newPrivateHarness runs the test on a PostgreSQL cluster of its own,
// started with settings (testenv.PrivatePostgres): for server-wide
// settings such as max_slot_wal_keep_size, which would invalidate the
// slots of other tests on the shared server.
func newPrivateHarness(t *testing.T, settings ...string) *harness {
	t.Helper()
	dsn := testenv.PrivatePostgres(t, settings...)
	if dsn == "" {
		t.FailNow() // not reached: PrivatePostgres skipped or failed
	}
	return newHarnessAt(t, dsn)
}

func newHarnessAt(t *testing.T, dsn string) *harness {
	t.Helper()
	sourceStopped.Store(nil) // a new test: no source of it has stopped
	ctx := context.Background()
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	short := strings.ToLower(strings.TrimPrefix(t.Name(), "Test"))
	short = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, short)
	if len(short) > 20 {
		short = short[:20]
	}
	h := &harness{t: t, db: db, name: "pgcdc_" + short + "_" + hex.EncodeToString(b[:]),
		port: int(db.Config().Port), database: db.Config().Database}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		h.dropSlot()
		_, _ = db.Exec(cctx, `DROP PUBLICATION IF EXISTS `+h.name)
		rows, _ := db.Query(cctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE $1`, h.name+"%")
		var names []string
		for rows.Next() {
			var n string
			_ = rows.Scan(&n)
			names = append(names, n)
		}
		rows.Close()
		for _, n := range names {
			_, _ = db.Exec(cctx, `DROP TABLE IF EXISTS public.`+n+` CASCADE`)
		}
		_, _ = db.Exec(cctx, `DROP TYPE IF EXISTS `+h.name+`_mood`)
		_ = db.Close(cctx)
	})
	return h
}

func (h *harness) exec(sqls ...string) {
	h.t.Helper()
	for _, q := range sqls {
		q = strings.ReplaceAll(q, "$T", h.name)
		if _, err := h.db.Exec(context.Background(), q); err != nil {
			h.t.Fatalf("%s: %v", q, err)
		}
	}
}

// config decodes a config for this harness; extra is more YAML keys
// (indented by two spaces... written flush left here, one per line).
func (h *harness) config(tables []string, extra string) *Config {
	h.t.Helper()
	var pubTables []string
	for _, t := range tables {
		pubTables = append(pubTables, "    - public."+strings.ReplaceAll(t, "$T", h.name))
	}
	extra = strings.ReplaceAll(extra, "$T", h.name)
	y := fmt.Sprintf("host: 127.0.0.1\nport: %d\ndatabase: %s\nuser: postgres\npassword: \"\"\nslot_name: %s\npublication_name: %s\ntls:\n  mode: disable\npublication_tables:\n%s\n%s", h.port, h.database, h.name, h.name, strings.Join(pubTables, "\n"), extra)
	cfg, ps := spec.DecodeString[Config](y, "config")
	if len(ps) > 0 {
		h.t.Fatalf("config: %v\n%s", spec.Problems(ps), y)
	}
	return cfg
}

func (h *harness) source(cfg *Config) *Source {
	h.t.Helper()
	s, err := newSource(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	// Make PostgreSQL stream in-progress transactions early, so that the
	// spool path is exercised by ordinary tests too.
	s.extraParams = map[string]string{"logical_decoding_work_mem": "64kB"}
	s.spillDir = h.t.TempDir()
	return s
}

func (h *harness) slotConfirmed() string {
	var lsn *string
	_ = h.db.QueryRow(context.Background(), `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, h.name).Scan(&lsn)
	if lsn == nil {
		return ""
	}
	return *lsn
}

var errCrash = errors.New("simulated crash")

// recorder is an Emitter that keeps what it acknowledged, and can crash
// (fail a batch and cancel the run) at a chosen batch.
type recorder struct {
	mu      sync.Mutex
	evs     []*events.Event
	pos     string
	batches int
	crashAt int // batch number that fails; 0 = never
	// crashIf, when set, fails the first batch it holds for, given the
	// events acknowledged before it.
	crashIf func(batch, acked []*events.Event) bool
	crashed bool
	cancel  context.CancelFunc
}

func (r *recorder) Emit(ctx context.Context, batch []*events.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches++
	if r.crashAt > 0 && r.batches == r.crashAt || !r.crashed && r.crashIf != nil && r.crashIf(batch, r.evs) {
		r.crashed = true
		r.cancel()
		return errCrash
	}
	r.evs = append(r.evs, batch...)
	r.pos = batch[len(batch)-1].Metadata.Position
	return nil
}

func (r *recorder) snapshot() []*events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*events.Event(nil), r.evs...)
}

func (r *recorder) position() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pos
}

// run starts Read in the background; stop cancels it and returns Read's
// result.
func run(base context.Context, s *Source, resume string, r *recorder) (stop func() error, done <-chan error) {
	ctx, cancel := context.WithCancel(base)
	r.mu.Lock()
	r.cancel = cancel
	r.mu.Unlock()
	ch := make(chan error, 1)
	var res []byte
	if resume != "" {
		res = []byte(resume)
	}
	sourceStopped.Store(nil)
	go func() {
		err := s.Read(ctx, res, r)
		if err != nil && ctx.Err() == nil {
			sourceStopped.Store(&err)
		}
		ch <- err
	}()
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-ch:
			case <-time.After(30 * time.Second):
				err = errors.New("Read did not return within 30s of cancel")
			}
		})
		return err
	}, ch
}

// sourceStopped holds the error a source's Read returned on its own (not
// cancelled) in the running test, so that a wait fails with the source's
// reason instead of a timeout. Tests of this package run one at a time.
var sourceStopped atomic.Pointer[error]

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if err := sourceStopped.Load(); err != nil {
			t.Fatalf("waiting for %s: the source stopped: %v", what, *err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func rowOf(t *testing.T, e *events.Event) map[string]any {
	t.Helper()
	m, err := e.Row()
	if err != nil {
		t.Fatalf("row of %s event: %v", e.Type, err)
	}
	return m
}

func num(v any) int64 {
	switch x := v.(type) {
	case json.Number:
		n, _ := x.Int64()
		return n
	case float64:
		return int64(x)
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return -1
}

// dataEvents keeps the data events of one table.
func dataEvents(evs []*events.Event, table string) []*events.Event {
	var out []*events.Event
	for _, e := range evs {
		if e.Stream == table && e.Type != events.Schema {
			out = append(out, e)
		}
	}
	return out
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:"))
		}
	}
	return "unknown"
}

// dropSlot terminates a walsender still holding the slot, then drops it.
func (h *harness) dropSlot() {
	ctx := context.Background()
	for range 100 {
		_, _ = h.db.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, h.name)
		_, err := h.db.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, h.name)
		if err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Errorf("could not drop slot %s", h.name)
}
