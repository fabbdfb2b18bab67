package mysqlcdc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/testenv"
)

const testAddr = "127.0.0.1:3306"

// testDB connects to the local MariaDB (skipping or failing per testenv).
func testDB(t testing.TB) *conn {
	t.Helper()
	testenv.RequireService(t, "mariadb", testAddr)
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
	s, err := New(cfg)
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

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
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
	go func() { done <- s.Read(ctx, resume, em) }()
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
