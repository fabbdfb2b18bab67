package rdbc

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/spec"
	"github.com/rivven/rivven-connect/shared/testenv"
)

const (
	pgAddr    = "127.0.0.1:5432"
	myAddr    = "127.0.0.1:3306"
	pgURL     = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	myDB      = "rivven_rdbc"
	myURL     = "mysql://root@127.0.0.1:3306/" + myDB
	myRootDSN = "root@tcp(127.0.0.1:3306)/"
)

// dbs is a test's connections to both servers and a name prefix its
// tables share, dropped afterwards.
type dbs struct {
	t    testing.TB
	pg   *sql.DB
	my   *sql.DB
	name string
}

func newDBs(t testing.TB, needMy bool) *dbs {
	t.Helper()
	testenv.RequireService(t, "postgres", pgAddr)
	if needMy {
		testenv.RequireService(t, "mariadb", myAddr)
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	h := &dbs{t: t, name: "rdbc_" + hex.EncodeToString(b[:])}
	var err error
	if h.pg, err = sql.Open("pgx", pgURL); err != nil {
		t.Fatal(err)
	}
	if needMy {
		root, err := sql.Open("mysql", myRootDSN)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := root.Exec("CREATE DATABASE IF NOT EXISTS " + myDB); err != nil {
			t.Fatal(err)
		}
		root.Close()
		if h.my, err = sql.Open("mysql", myRootDSN+myDB+"?time_zone=%27%2B00%3A00%27"); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		drop := func(db *sql.DB, list string, quote func(string) string) {
			rows, err := db.Query(list, h.name+"%")
			if err != nil {
				return
			}
			var names []string
			for rows.Next() {
				var n string
				_ = rows.Scan(&n)
				names = append(names, n)
			}
			rows.Close()
			for _, n := range names {
				_, _ = db.Exec("DROP TABLE IF EXISTS " + quote(n))
			}
		}
		drop(h.pg, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE $1`, postgres.Quote)
		h.pg.Close()
		if h.my != nil {
			drop(h.my, `SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '`+myDB+`' AND TABLE_NAME LIKE ?`, mysql.Quote)
			h.my.Close()
		}
	})
	return h
}

// exec runs statements with $T replaced by the test's table prefix.
func (h *dbs) exec(db *sql.DB, sqls ...string) {
	h.t.Helper()
	for _, q := range sqls {
		q = strings.ReplaceAll(q, "$T", h.name)
		if _, err := db.Exec(q); err != nil {
			h.t.Fatalf("%s: %v", q, err)
		}
	}
}

// rows returns a query's rows as text (NULL as "NULL"), one string per
// row with columns separated by |.
func (h *dbs) rows(db *sql.DB, q string) []string {
	h.t.Helper()
	out, err := h.tryRows(db, q)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

func (h *dbs) tryRows(db *sql.DB, q string) ([]string, error) {
	q = strings.ReplaceAll(q, "$T", h.name)
	rs, err := db.Query(q)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", q, err)
	}
	defer rs.Close()
	cols, _ := rs.Columns()
	var out []string
	for rs.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			return nil, err
		}
		parts := make([]string, len(cols))
		for i, v := range vals {
			parts[i] = "NULL"
			if v.Valid {
				parts[i] = v.String
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	return out, rs.Err()
}

func decode[C any](t testing.TB, y string) *C {
	t.Helper()
	cfg, ps := spec.DecodeString[C](y, "config")
	if len(ps) > 0 {
		t.Fatalf("config: %v\n%s", spec.Problems(ps), y)
	}
	return cfg
}

func (h *dbs) sink(y string) *Sink {
	h.t.Helper()
	s, err := NewSink(context.Background(), decode[SinkConfig](h.t, strings.ReplaceAll(y, "$T", h.name)))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func (h *dbs) source(y string) *Source {
	h.t.Helper()
	s, err := NewSource(context.Background(), decode[SourceConfig](h.t, strings.ReplaceAll(y, "$T", h.name)))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// wire sends events through the Rivven JSON codec, as the broker would
// carry them from a source to a sink.
func wire(t testing.TB, batch []*events.Event) []*events.Event {
	t.Helper()
	out := make([]*events.Event, len(batch))
	for i, e := range batch {
		b, err := events.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if out[i], err = events.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// collector records emitted batches (after the wire) and positions.
type collector struct {
	mu     sync.Mutex
	t      testing.TB
	events []*events.Event
	pos    string
	sink   *Sink
}

func (c *collector) Emit(ctx context.Context, batch []*events.Event) error {
	evs := wire(c.t, batch)
	if c.sink != nil {
		if err := c.sink.Write(ctx, evs); err != nil {
			return fmt.Errorf("sink: %w", err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, evs...)
	c.pos = batch[len(batch)-1].Metadata.Position
	return nil
}

func (c *collector) take() ([]*events.Event, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	evs := c.events
	c.events = nil
	return evs, c.pos
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
