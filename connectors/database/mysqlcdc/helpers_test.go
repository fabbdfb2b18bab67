package mysqlcdc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/testenv"
)

const testAddr = "127.0.0.1:3306"

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Usability{Name: "mariadb", Addr: testAddr, Check: serverUsable}))
}

// serverUsable is the source's own Check against the test server, so a
// server without a row-based binlog fails the package once, saying what to
// change, instead of every test timing out.
func serverUsable() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := New(context.Background(), testConfig())
	if err != nil {
		return err
	}
	return s.(*Source).Check(ctx)
}

// testDB connects to the local MariaDB (skipping or failing per testenv).
func testDB(t testing.TB) *conn {
	t.Helper()
	testenv.RequireService(t, "mariadb", testAddr)
	sourceStopped.Store(nil) // a new test: no source of it has stopped
	c, err := dial(context.Background(), connParams{Addr: testAddr, User: "root", Database: "test", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func mustExec(t testing.TB, c *conn, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if err := c.exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// uniqueTable returns a fresh table name and drops it when the test ends.
func uniqueTable(t testing.TB, c *conn, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s_%d_%d", prefix, time.Now().UnixNano()%1e9, rand.IntN(1e6))
	t.Cleanup(func() { _ = c.exec("DROP TABLE IF EXISTS `" + name + "`") })
	return name
}

func testConfig(tables ...string) *Config {
	return &Config{
		Host: "127.0.0.1", Port: 3306, Database: "test", User: "root", ServerID: uint32(1000 + rand.IntN(1e6)),
		Tables: tables, BinlogPosition: 4, UseGTID: true,
		Snapshot:              &Snapshot{Mode: "initial", BatchSize: 100},
		TLS:                   &TLS{Mode: "disable"},
		HeartbeatIntervalSecs: 1, ConnectTimeoutSecs: 10, MaxBatchSize: 1000,
		RetryInitialMS: 50, RetryMaxMS: 500,
	}
}

func newSource(t testing.TB, cfg *Config) *Source {
	t.Helper()
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s.(*Source)
}

// recorder is an Emitter that keeps every event of every batch it
// accepted and the committed position (the last event's), like the engine.
type recorder struct {
	mu        sync.Mutex
	events    []*events.Event
	committed []byte
	// failAfter, when > 0, makes the emitter accept that many more batches
	// and then cancel (a crash before the next batch was published).
	failAfter int
	cancel    context.CancelFunc
	notify    chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) Emit(ctx context.Context, batch []*events.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failAfter > 0 {
		r.failAfter--
		if r.failAfter == 0 {
			r.cancel()
			return context.Canceled
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r.events = append(r.events, batch...)
	r.committed = []byte(batch[len(batch)-1].Metadata.Position)
	select {
	case r.notify <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) snapshot() ([]*events.Event, []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*events.Event(nil), r.events...), r.committed
}

// sourceStopped holds the error a source's Read returned on its own (not
// cancelled) in the running test, so that a wait fails with the source's
// reason instead of a timeout. Tests of this package run one at a time.
var sourceStopped atomic.Pointer[error]

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if err := sourceStopped.Load(); err != nil {
			t.Fatalf("waiting for %s: the source stopped: %v", what, *err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runRead starts Read in the background; stop cancels it and waits.
func runRead(t testing.TB, s *Source, resume []byte, em *recorder) (ctx context.Context, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	em.mu.Lock()
	em.cancel = cancel
	em.mu.Unlock()
	done := make(chan error, 1)
	sourceStopped.Store(nil)
	go func() {
		err := s.Read(ctx, resume, em)
		if err != nil && ctx.Err() == nil {
			sourceStopped.Store(&err)
		}
		done <- err
	}()
	var once sync.Once
	var err error
	return ctx, func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = fmt.Errorf("Read did not return after cancel")
			}
		})
		return err
	}
}

func data(t testing.TB, e *events.Event) map[string]any {
	t.Helper()
	raw, err := e.Data.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("event data %s: %v", raw, err)
	}
	return m
}

// fatalRecorder stands in for a testing.TB to see how a helper fails
// without failing the real test.
type fatalRecorder struct {
	testing.TB
	fatal string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// A wait on a source that has stopped fails with the source's own error,
// not "timed out waiting for snapshot" after the full timeout.
func TestWaitSurfacesSourceError(t *testing.T) {
	testDB(t)
	cfg := testConfig("no_such_table")
	cfg.User = "rivven_no_such_user"
	em := newRecorder()
	_, stop := runRead(t, newSource(t, cfg), nil, em)
	defer func() { _ = stop() }()
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		waitFor(r, time.Minute, "snapshot", func() bool { return false })
	}()
	<-done
	if !strings.Contains(r.fatal, "the source stopped") || !strings.Contains(r.fatal, "rivven_no_such_user") {
		t.Fatalf("wait failed with %q, want the source's error", r.fatal)
	}
}
