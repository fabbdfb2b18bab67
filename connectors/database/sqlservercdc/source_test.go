package sqlservercdc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

var (
	colsOrders = []column{
		{Name: "id", Type: "int"},
		{Name: "amount", Type: "decimal", Precision: 12, Scale: 4, Nullable: true},
		{Name: "note", Type: "nvarchar", MaxLength: 200, Nullable: true},
	}
	colsCustomers = []column{
		{Name: "id", Type: "int"},
		{Name: "name", Type: "nvarchar", MaxLength: 100, Nullable: true},
	}
)

// world is a fake database with orders and customers captured.
func world(t *testing.T, orders int) *fakeDB {
	t.Helper()
	f := newFake()
	f.addTable("orders", colsOrders, []string{"id"})
	f.addTable("customers", colsCustomers, []string{"id"})
	f.enable("orders", "dbo_orders")
	f.enable("customers", "dbo_customers")
	f.commit(func(x *tx) {
		for i := 1; i <= orders; i++ {
			x.insert("orders", int64(i), []byte(fmt.Sprintf("%d.5000", i)), fmt.Sprintf("order %d", i))
		}
		x.insert("customers", int64(1), "Ada")
	})
	return f
}

func newSource(t *testing.T, f *fakeDB, extra string) *Source {
	t.Helper()
	cfg, ps := spec.DecodeString[Config]("host: db.example.com\ndatabase: shop\nusername: cdc_user\npassword: pw\npoll_interval_ms: 10\n"+extra, "sources.sql.config")
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	c, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := c.(*Source)
	s.open = func(context.Context) (store, error) {
		f.mu.Lock()
		f.opens++
		f.mu.Unlock()
		return f, nil
	}
	return s
}

// run is one run of Read: it stops once want events arrived (or, with
// crashAfter > 0, fails the batch that would pass crashAfter events, as
// a publish failing would) and returns what was emitted and the position
// the engine committed (the last event's of the last accepted batch).
type run struct {
	events    []*events.Event
	committed []byte
	err       error
	logs      string
}

// readGuard bounds a read against a hang; the real-server test raises it
// (a capture job scans the log every few seconds).
var readGuard = 20 * time.Second

func read(t *testing.T, s *Source, resume []byte, want, crashAfter int) run {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs bytes.Buffer
	ctx = connector.WithRuntime(ctx, &connector.Runtime{Name: "sql", Log: slog.New(slog.NewTextHandler(&logs, nil))})
	var mu sync.Mutex
	var r run
	r.committed = resume
	errCrash := errors.New("publish failed")
	emit := connector.EmitterFunc(func(_ context.Context, b []*events.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if crashAfter > 0 && len(r.events)+len(b) > crashAfter {
			cancel()
			return errCrash
		}
		r.events = append(r.events, b...)
		r.committed = []byte(b[len(b)-1].Metadata.Position)
		if want > 0 && len(r.events) >= want {
			cancel()
		}
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- s.Read(ctx, resume, emit) }()
	select {
	case r.err = <-done:
	case <-time.After(readGuard): // a guard against a hang, not a timing assertion
		cancel()
		t.Fatalf("Read did not return; %d events so far", len(r.events))
	}
	if errors.Is(r.err, errCrash) {
		r.err = nil
	}
	r.logs = logs.String()
	return r
}

// summary renders events as type stream key data, one per line.
func summary(evs []*events.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		d, _ := e.Data.Value()
		b, _ := json.Marshal(d)
		out[i] = fmt.Sprintf("%s %s %s %s", e.Type, e.Stream, e.Key, b)
	}
	return out
}

func wantLines(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSnapshotThenStream(t *testing.T) {
	f := world(t, 2)
	s := newSource(t, f, "")
	r := read(t, s, nil, 3, 0)
	if r.err != nil {
		t.Fatal(r.err)
	}
	wantLines(t, summary(r.events),
		`snapshot-read dbo.customers {"id":1} {"id":1,"name":"Ada"}`,
		`snapshot-read dbo.orders {"id":1} {"amount":1.5000,"id":1,"note":"order 1"}`,
		`snapshot-read dbo.orders {"id":2} {"amount":2.5000,"id":2,"note":"order 2"}`)
	// The exact decimal text is in the payload, not a float's.
	if raw, _ := r.events[1].Data.JSON(); !bytes.Contains(raw, []byte(`"amount":1.5000`)) {
		t.Fatalf("payload %s", raw)
	}
	// Changes in one transaction across both tables, in log order; the
	// update's two images become one event.
	f.commit(func(x *tx) {
		x.update("orders", int64(1), []byte("10.0100"), "changed")
		x.insert("customers", int64(2), "Grace")
		x.delete("orders", int64(2))
	})
	f.commit(func(x *tx) { x.insert("orders", int64(3), nil, "ユニコード") })
	r2 := read(t, s, r.committed, 4, 0)
	if r2.err != nil {
		t.Fatal(r2.err)
	}
	wantLines(t, summary(r2.events),
		`update dbo.orders {"id":1} {"after":{"amount":10.0100,"id":1,"note":"changed"},"before":{"amount":1.5000,"id":1,"note":"order 1"}}`,
		`insert dbo.customers {"id":2} {"id":2,"name":"Grace"}`,
		`delete dbo.orders {"id":2} {"amount":2.5000,"id":2,"note":"order 2"}`,
		`insert dbo.orders {"id":3} {"amount":null,"id":3,"note":"ユニコード"}`)
	e := r2.events[0]
	if e.Source.Commit != e.Metadata.TransactionID || e.Source.Commit != r2.events[2].Source.Commit || e.Source.Commit == r2.events[3].Source.Commit {
		t.Fatalf("commit LSNs %s %s %s", e.Source.Commit, r2.events[2].Source.Commit, r2.events[3].Source.Commit)
	}
	if !strings.Contains(e.Source.Columns, `"amount":"decimal(12,4)"`) || !strings.Contains(e.Source.Columns, `"id":"int not null"`) {
		t.Fatalf("columns %s", e.Source.Columns)
	}
}

// TestResumeExactlyAfterEachEvent: a publish failing after any number of
// events, and a restart from the committed position, neither loses nor
// repeats a change, in the middle of a transaction and of a snapshot:
// the events of both runs applied in order give the tables' final state,
// no change event comes twice, and once the snapshot was through the two
// runs together are exactly the uninterrupted run.
func TestResumeExactlyAfterEachEvent(t *testing.T) {
	const cfg = "snapshot_chunk_size: 2\nmax_batch_size: 1\n"
	build := func() *fakeDB {
		f := world(t, 5)
		f.commit(func(x *tx) {
			x.update("orders", int64(1), []byte("1.0000"), "a")
			x.insert("customers", int64(2), "Grace")
			x.update("orders", int64(2), []byte("2.0000"), "b")
		})
		f.commit(func(x *tx) { x.delete("orders", int64(3)) })
		return f
	}
	later := func(f *fakeDB) {
		f.commit(func(x *tx) {
			x.insert("orders", int64(9), []byte("9.0000"), "nine")
			x.update("customers", int64(1), "Ada L.")
			x.insert("orders", int64(10), []byte("10.0000"), "ten")
		})
		f.commit(func(x *tx) { x.delete("orders", int64(9)) })
	}
	f := build()
	full := read(t, newSource(t, f, cfg), nil, 6, 0)
	later(f)
	all := append(full.events, read(t, newSource(t, f, cfg), full.committed, 4, 0).events...)
	ref := summary(all)
	want := apply(t, all)
	if len(ref) != 10 {
		t.Fatalf("reference run: %v", ref)
	}
	for crash := 1; crash < len(ref); crash++ {
		f := build()
		// The snapshot has 6 events; a crash after more happens in the
		// stream of the later changes.
		crashFirst := crash
		if crash >= 6 {
			crashFirst = 0
		}
		first := read(t, newSource(t, f, cfg), nil, min(crash, 6), crashFirst)
		if first.err != nil {
			t.Fatal(first.err)
		}
		later(f)
		if crash > 6 {
			second := read(t, newSource(t, f, cfg), first.committed, 0, crash-6)
			if second.err != nil {
				t.Fatal(second.err)
			}
			first.events, first.committed = append(first.events, second.events...), second.committed
		}
		// The rest: until the final state is reached (the snapshot of a
		// restarted snapshot already sees the later changes).
		rest := readUntil(t, newSource(t, f, cfg), first.committed, func(evs []*events.Event) bool {
			return apply(t, append(slices.Clone(first.events), evs...)) == want
		})
		evs := append(first.events, rest...)
		if got := apply(t, evs); got != want {
			t.Fatalf("crash after %d events: final state\n%s\nwant\n%s", crash, got, want)
		}
		seen := map[string]bool{}
		for _, e := range evs {
			if e.Type == events.SnapshotRead {
				continue
			}
			id := e.Stream + e.Source.Position
			if seen[id] {
				t.Fatalf("crash after %d events: change %s %s emitted twice", crash, e.Type, id)
			}
			seen[id] = true
		}
		if crash >= 6 {
			if got := summary(evs); strings.Join(got, "\n") != strings.Join(ref, "\n") {
				t.Fatalf("crash after %d events:\n%s\nwant\n%s", crash, strings.Join(got, "\n"), strings.Join(ref, "\n"))
			}
		}
	}
}

// apply folds events into table state: key to row, rendered sorted.
func apply(t *testing.T, evs []*events.Event) string {
	t.Helper()
	state := map[string]string{}
	for _, e := range evs {
		k := e.Stream + " " + string(e.Key)
		d, _ := e.Data.JSON()
		switch e.Type {
		case events.Insert, events.SnapshotRead:
			state[k] = string(d)
		case events.Update:
			var u struct{ After json.RawMessage }
			if err := json.Unmarshal(d, &u); err != nil {
				t.Fatal(err)
			}
			state[k] = string(u.After)
		case events.Delete:
			delete(state, k)
		}
	}
	lines := make([]string, 0, len(state))
	for k, v := range state {
		lines = append(lines, k+" "+v)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// readUntil reads until done holds for the events so far.
func readUntil(t *testing.T, s *Source, resume []byte, done func([]*events.Event) bool) []*events.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var evs []*events.Event
	emit := connector.EmitterFunc(func(_ context.Context, b []*events.Event) error {
		mu.Lock()
		defer mu.Unlock()
		evs = append(evs, b...)
		if done(evs) {
			cancel()
		}
		return nil
	})
	errc := make(chan error, 1)
	go func() { errc <- s.Read(ctx, resume, emit) }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(readGuard): // a guard against a hang
		cancel()
		t.Fatalf("never reached the final state; %d events", len(evs))
	}
	return evs
}

// TestResumeInsideTransaction: the committed position is a change inside
// a transaction; a restart reads the transaction again and emits only
// what follows it.
func TestResumeInsideTransaction(t *testing.T) {
	f := world(t, 0)
	s := newSource(t, f, "snapshot_mode: never\nmax_batch_size: 1\n")
	f.commit(func(x *tx) {
		for i := 1; i <= 4; i++ {
			x.insert("orders", int64(i), nil, nil)
		}
	})
	first := read(t, s, nil, 0, 3) // the insert of customer 1, orders 1 and 2
	if len(first.events) != 3 {
		t.Fatalf("%d events", len(first.events))
	}
	rest := read(t, s, first.committed, 2, 0)
	wantLines(t, summary(rest.events),
		`insert dbo.orders {"id":3} {"amount":null,"id":3,"note":null}`,
		`insert dbo.orders {"id":4} {"amount":null,"id":4,"note":null}`)
}

// TestCleanupRemovedPosition: cleanup raised the change tables' low end
// above the stored position. initial stops loudly; when_needed takes a
// new snapshot; recovery re-snapshots only the table that lost changes
// and streams the other on from where it was.
func TestCleanupRemovedPosition(t *testing.T) {
	setup := func(mode string) (*fakeDB, []byte) {
		f := world(t, 2)
		s := newSource(t, f, "snapshot_mode: "+mode+"\n")
		r := read(t, s, nil, 3, 0)
		if r.err != nil {
			t.Fatal(r.err)
		}
		// While the source is down: changes to both tables, and cleanup
		// removes the orders changes.
		f.commit(func(x *tx) { x.update("orders", int64(1), []byte("5.0000"), "gone") })
		f.commit(func(x *tx) { x.insert("customers", int64(2), "Grace") })
		f.commit(func(x *tx) { x.update("orders", int64(2), []byte("6.0000"), "kept") })
		f.mu.Lock()
		keep := f.max
		f.mu.Unlock()
		f.cleanup("dbo_orders", keep)
		return f, r.committed
	}

	f, pos := setup("initial")
	r := read(t, newSource(t, f, ""), pos, 0, 0)
	if !errors.Is(r.err, connector.ErrFatal) || !strings.Contains(r.err.Error(), "CDC cleanup already removed changes") || !strings.Contains(r.err.Error(), "orders") || strings.Contains(r.err.Error(), "customers") {
		t.Fatalf("initial: %v", r.err)
	}

	f, pos = setup("when_needed")
	r = read(t, newSource(t, f, "snapshot_mode: when_needed\n"), pos, 4, 0)
	if r.err != nil || !strings.Contains(r.logs, "taking a new snapshot of every table") {
		t.Fatalf("when_needed: %v\n%s", r.err, r.logs)
	}
	wantLines(t, summary(r.events),
		`snapshot-read dbo.customers {"id":1} {"id":1,"name":"Ada"}`,
		`snapshot-read dbo.customers {"id":2} {"id":2,"name":"Grace"}`,
		`snapshot-read dbo.orders {"id":1} {"amount":5.0000,"id":1,"note":"gone"}`,
		`snapshot-read dbo.orders {"id":2} {"amount":6.0000,"id":2,"note":"kept"}`)

	f, pos = setup("recovery")
	r = read(t, newSource(t, f, "snapshot_mode: recovery\n"), pos, 3, 0)
	if r.err != nil || !strings.Contains(r.logs, "level=ERROR") {
		t.Fatalf("recovery: %v\n%s", r.err, r.logs)
	}
	// orders is read again; customers' change is streamed, not lost;
	// the orders change that cleanup kept is in the snapshot already
	// and not streamed a second time.
	wantLines(t, summary(r.events),
		`snapshot-read dbo.orders {"id":1} {"amount":5.0000,"id":1,"note":"gone"}`,
		`snapshot-read dbo.orders {"id":2} {"amount":6.0000,"id":2,"note":"kept"}`,
		`insert dbo.customers {"id":2} {"id":2,"name":"Grace"}`)
	// And after it, new changes of orders stream normally, also after a
	// restart from the last position.
	f.commit(func(x *tx) { x.delete("orders", int64(2)) })
	r2 := read(t, newSource(t, f, "snapshot_mode: recovery\n"), r.committed, 1, 0)
	if r2.err != nil {
		t.Fatal(r2.err)
	}
	wantLines(t, summary(r2.events), `delete dbo.orders {"id":2} {"amount":6.0000,"id":2,"note":"kept"}`)
}

// TestCaptureInstanceSwitch: after a column is added, a second capture
// instance with it is created and later the first dropped; changes come
// from the old instance below the new one's start and from the new one
// after, none lost or repeated.
func TestCaptureInstanceSwitch(t *testing.T) {
	f := world(t, 1)
	s := newSource(t, f, "snapshot_mode: never\n")
	r := read(t, s, nil, 2, 0)
	f.commit(func(x *tx) { x.update("orders", int64(1), []byte("1.0000"), "before the change") })
	f.addColumn("orders", column{Name: "status", Type: "varchar", MaxLength: 20, Nullable: true})
	f.commit(func(x *tx) { x.insert("orders", int64(2), []byte("2.0000"), "old instance only", "new") })
	f.enable("orders", "dbo_orders_v2")
	f.commit(func(x *tx) { x.insert("orders", int64(3), []byte("3.0000"), "both instances", "new") })
	r2 := read(t, s, r.committed, 3, 0)
	f.disable("dbo_orders")
	f.commit(func(x *tx) { x.delete("orders", int64(3)) })
	r3 := read(t, s, r2.committed, 1, 0)
	for _, x := range []run{r, r2, r3} {
		if x.err != nil {
			t.Fatal(x.err)
		}
	}
	wantLines(t, append(summary(r2.events), summary(r3.events)...),
		`update dbo.orders {"id":1} {"after":{"amount":1.0000,"id":1,"note":"before the change"},"before":{"amount":1.5000,"id":1,"note":"order 1"}}`,
		`insert dbo.orders {"id":2} {"amount":2.0000,"id":2,"note":"old instance only"}`,
		`insert dbo.orders {"id":3} {"amount":3.0000,"id":3,"note":"both instances","status":"new"}`,
		`delete dbo.orders {"id":3} {"amount":3.0000,"id":3,"note":"both instances","status":"new"}`)
	if !strings.Contains(r3.events[0].Source.Columns, `"status":"varchar(20)"`) {
		t.Fatalf("columns %s", r3.events[0].Source.Columns)
	}
}

func TestSnapshotModes(t *testing.T) {
	// never: from the oldest change the tables hold, no snapshot rows.
	f := world(t, 1)
	r := read(t, newSource(t, f, "snapshot_mode: never\n"), nil, 2, 0)
	wantLines(t, summary(r.events),
		`insert dbo.orders {"id":1} {"amount":1.5000,"id":1,"note":"order 1"}`,
		`insert dbo.customers {"id":1} {"id":1,"name":"Ada"}`)

	// schema_only: only what changes after the start.
	f = world(t, 1)
	s := newSource(t, f, "snapshot_mode: schema_only\n")
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan *events.Event, 10)
	go func() {
		_ = s.Read(ctx, nil, connector.EmitterFunc(func(_ context.Context, b []*events.Event) error {
			for _, e := range b {
				got <- e
			}
			return nil
		}))
	}()
	// The source polls from the max LSN it found at start; wait until it
	// has polled once before the change (the polls counter would do, a
	// short wait in the fake is simpler: MaxLSN is read at once).
	waitOpens(t, f, 1)
	f.commit(func(x *tx) { x.insert("orders", int64(2), nil, "after start") })
	// First the tables' schemas, then only the change after the start.
	for _, want := range []string{"schema dbo.customers", "schema dbo.orders", "insert dbo.orders"} {
		e := <-got
		if e.Type+" "+events.Type(e.Stream) != events.Type(want) {
			t.Fatalf("schema_only: %s %s, want %s", e.Type, e.Stream, want)
		}
		if e.Type == events.Schema {
			d, _ := e.Data.JSON()
			if e.Stream == "dbo.orders" && !bytes.Contains(d, []byte(`{"name":"amount","type":"decimal(12,4)","nullable":true}`)) {
				t.Fatalf("schema %s", d)
			}
		}
	}
	cancel()

	// initial_only: the snapshot, then Read returns.
	f = world(t, 2)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel2()
	var n int
	err := newSource(t, f, "snapshot_mode: initial_only\n").Read(ctx2, nil, connector.EmitterFunc(func(_ context.Context, b []*events.Event) error {
		n += len(b)
		return nil
	}))
	if err != nil || n != 3 || ctx2.Err() != nil {
		t.Fatalf("initial_only: %v, %d events", err, n)
	}

	// always: a stored position still gets a snapshot (once per process).
	f = world(t, 1)
	s = newSource(t, f, "snapshot_mode: always\n")
	r = read(t, s, nil, 2, 0)
	r2 := read(t, newSource(t, f, "snapshot_mode: always\n"), r.committed, 2, 0)
	if r2.events[0].Type != events.SnapshotRead {
		t.Fatalf("always: %s", r2.events[0].Type)
	}
}

func waitOpens(t *testing.T, f *fakeDB, n int) {
	t.Helper()
	for range 2000 {
		f.mu.Lock()
		o := f.opens
		f.mu.Unlock()
		if o >= n {
			time.Sleep(50 * time.Millisecond)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the source did not open")
}

func TestDiscoverAndCheck(t *testing.T) {
	f := world(t, 1)
	f.addTable("audit", colsCustomers, []string{"id"})
	f.addTable("secrets", colsCustomers, []string{"id"})
	f.enable("secrets", "dbo_secrets").readable = false
	s := newSource(t, f, "exclude_tables: [custom*]\ninclude_tables: [orders, customers, secrets]\n")
	streams, err := s.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	notes := map[string]string{}
	for _, st := range streams {
		notes[st.Name] = st.Note
	}
	if notes["orders"] != "" || !strings.Contains(notes["audit"], "not enabled for this table") ||
		!strings.Contains(notes["customers"], "include_tables/exclude_tables") || !strings.Contains(notes["secrets"], "no SELECT permission on the change table cdc.dbo_secrets_CT") {
		t.Fatalf("notes %v", notes)
	}
	if err := s.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "no SELECT permission") {
		t.Fatalf("check: %v", err)
	}
	if err := newSource(t, f, "include_tables: [orders]\n").Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.cdcOn = false
	if err := newSource(t, f, "").Check(context.Background()); err == nil || !strings.Contains(err.Error(), "sp_cdc_enable_db") {
		t.Fatalf("check: %v", err)
	}
	r := read(t, newSource(t, f, ""), nil, 0, 0)
	if !errors.Is(r.err, connector.ErrFatal) {
		t.Fatalf("read with CDC off: %v", r.err)
	}
}

func TestConfig(t *testing.T) {
	cfg, ps := spec.DecodeString[Config](`host: db.example.com
port: 1433
database: production
username: cdc_user
password: "p@ss;word=x"
schema: dbo
include_tables:
  - orders
  - customers
snapshot_mode: initial
poll_interval_ms: 500
`, "sources.sqlserver.config")
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	if cfg.Port != 1433 || cfg.Schema != "dbo" || cfg.Encrypt || cfg.TrustServerCertificate || cfg.SnapshotChunkSize != 10000 {
		t.Fatalf("%+v", cfg)
	}
	u, err := url.Parse(cfg.dsn())
	if err != nil {
		t.Fatal(err)
	}
	if pw, _ := u.User.Password(); pw != "p@ss;word=x" || u.Query().Get("encrypt") != "false" || u.Query().Get("database") != "production" || u.Host != "db.example.com:1433" {
		t.Fatalf("dsn %s", u.Redacted())
	}
	for _, c := range []struct{ src, path string }{
		{"database: d\nusername: u\npassword: p\n", "c.host"},
		{"host: h\ndatabase: d\nusername: u\npassword: p\nsnapshot_mode: sometimes\n", "c.snapshot_mode"},
		{"host: h\ndatabase: d\nusername: u\npassword: p\ntrust_server_certificate: true\n", "c.trust_server_certificate"},
		{"host: h\ndatabase: d\nusername: u\npassword: p\ninclude_tables: ['[']\n", "c.include_tables[0]"},
		{"host: h\ndatabase: d\nusername: u\n", "c.password"},
	} {
		_, ps := spec.DecodeString[Config](c.src, "c")
		found := false
		for _, p := range ps {
			found = found || p.Path == c.path
		}
		if !found {
			t.Errorf("%q: want a problem at %s, got %v", c.src, c.path, ps)
		}
	}
}

func TestChunkSQL(t *testing.T) {
	got := chunkSQL(chunkQuery{Schema: "dbo", Table: "order]s", Cols: []string{"a", "b", "c"}, Key: []string{"a", "b"}, After: []any{1, 2}, Limit: 100})
	want := "SELECT TOP (100) [a], [b], [c] FROM [dbo].[order]]s] WHERE ([a] > @p1) OR ([a] = @p1 AND [b] > @p2) ORDER BY [a], [b]"
	if got != want {
		t.Fatalf("\n%s\n%s", got, want)
	}
	if got := chunkSQL(chunkQuery{Schema: "s", Table: "t", Cols: []string{"x"}}); got != "SELECT [x] FROM [s].[t]" {
		t.Fatal(got)
	}
}

// TestDebeziumEncoding: the events are what the Debezium codec (a reader
// this package did not write) turns into envelopes, with and without
// Kafka Connect schemas built from the declared column types.
func TestDebeziumEncoding(t *testing.T) {
	f := world(t, 1)
	r := read(t, newSource(t, f, ""), nil, 2, 0)
	f.commit(func(x *tx) { x.update("orders", int64(1), []byte("7.2500"), "x") })
	r2 := read(t, newSource(t, f, ""), r.committed, 1, 0)
	for _, schemas := range []bool{false, true} {
		codec, err := events.NewCodec(events.CodecDebezium, events.DebeziumOptions{SkippedOperations: "t", SchemasEnable: schemas, DecimalHandlingMode: "string", TimePrecisionMode: "adaptive"}, events.CloudEventsOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range append(r.events, r2.events...) {
			b, err := codec.Append(nil, e)
			if err != nil {
				t.Fatalf("schemas %v: %s: %v", schemas, e.Type, err)
			}
			if !json.Valid(b) {
				t.Fatalf("%s", b)
			}
			if e.Type == events.Update && !bytes.Contains(b, []byte(`"op":"u"`)) {
				t.Fatalf("update envelope %s", b)
			}
			if e.Type == events.Update && !bytes.Contains(b, []byte(`"7.2500"`)) {
				t.Fatalf("decimal_handling_mode string lost the digits: %s", b)
			}
		}
	}
}

// TestSchemaChangeAnnounced: a capture instance added while the source
// streams is announced with the table's new columns before its changes.
func TestSchemaChangeAnnounced(t *testing.T) {
	f := world(t, 1)
	s := newSource(t, f, "snapshot_mode: schema_only\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan *events.Event, 10)
	go func() {
		_ = s.Read(ctx, nil, connector.EmitterFunc(func(_ context.Context, b []*events.Event) error {
			for _, e := range b {
				got <- e
			}
			return nil
		}))
	}()
	<-got
	<-got // the two tables' schemas at the start
	f.addColumn("orders", column{Name: "status", Type: "varchar", MaxLength: 20, Nullable: true})
	f.enable("orders", "dbo_orders_v2")
	f.commit(func(x *tx) { x.insert("orders", int64(2), nil, "n", "new") })
	e := <-got
	d, _ := e.Data.JSON()
	if e.Type != events.Schema || !bytes.Contains(d, []byte(`"capture_instances":["dbo_orders","dbo_orders_v2"]`)) || !bytes.Contains(d, []byte(`"status"`)) {
		t.Fatalf("%s %s", e.Type, d)
	}
	if e = <-got; e.Type != events.Insert {
		t.Fatalf("then %s", e.Type)
	}
}

// TestCapturedColumnList: with @captured_column_list, snapshot rows and
// changes have the captured columns only.
func TestCapturedColumnList(t *testing.T) {
	f := newFake()
	f.addTable("orders", colsOrders, []string{"id"})
	f.commit(func(x *tx) { x.insert("orders", int64(1), []byte("1.0000"), "secret note") })
	f.enable("orders", "dbo_orders", "id", "amount")
	f.commit(func(x *tx) { x.insert("orders", int64(2), []byte("2.0000"), "another") })
	r := read(t, newSource(t, f, ""), nil, 2, 0)
	f.commit(func(x *tx) { x.insert("orders", int64(3), []byte("3.0000"), "third") })
	r2 := read(t, newSource(t, f, ""), r.committed, 1, 0)
	wantLines(t, summary(append(r.events, r2.events...)),
		`snapshot-read dbo.orders {"id":1} {"amount":1.0000,"id":1}`,
		`snapshot-read dbo.orders {"id":2} {"amount":2.0000,"id":2}`,
		`insert dbo.orders {"id":3} {"amount":3.0000,"id":3}`)
}

// TestCaptureInstanceSwitchStartLate: a second capture instance whose
// start the capture job has not established yet does not hide the older
// instance's changes; once it is established it takes over, and nothing
// comes twice.
func TestCaptureInstanceSwitchStartLate(t *testing.T) {
	f := world(t, 1)
	s := newSource(t, f, "snapshot_mode: never\n")
	r := read(t, s, nil, 2, 0)
	v2 := f.enable("orders", "dbo_orders_v2")
	f.mu.Lock()
	start := v2.min
	v2.min = lsn{}
	f.mu.Unlock()
	f.commit(func(x *tx) { x.insert("orders", int64(2), nil, "while v2 has no start") })
	r2 := read(t, s, r.committed, 1, 0)
	f.mu.Lock()
	v2.min = start
	f.mu.Unlock()
	f.commit(func(x *tx) { x.insert("orders", int64(3), nil, "after v2 started") })
	r3 := read(t, s, r2.committed, 1, 0)
	for _, x := range []run{r, r2, r3} {
		if x.err != nil {
			t.Fatal(x.err)
		}
	}
	wantLines(t, append(summary(r2.events), summary(r3.events)...),
		`insert dbo.orders {"id":2} {"amount":null,"id":2,"note":"while v2 has no start"}`,
		`insert dbo.orders {"id":3} {"amount":null,"id":3,"note":"after v2 started"}`)
}
