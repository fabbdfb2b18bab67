package rdbc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
)

func ids(t *testing.T, evs []*events.Event) []string {
	t.Helper()
	var out []string
	for _, e := range evs {
		row, err := e.Row()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(row["id"]))
	}
	return out
}

// TestSourceIncrementingResumesAndRefusesNonMonotonic reads new rows
// only, in batches, resumes from the committed position, and stops with
// a clear error when a row appears below it.
func TestSourceIncrementingResumesAndRefusesNonMonotonic(t *testing.T) {
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			h := newDBs(t, tg.name == "mariadb")
			db := tg.db(h)
			h.exec(db, tg.ddl)
			for i := 1; i <= 5; i++ {
				h.exec(db, fmt.Sprintf(`INSERT INTO $T_t VALUES (%d, 'n%d', %d.5, %d)`, i*10, i, i, i))
			}
			y := "url: " + tg.url + "\ntables: [$T_t]\nmode: incrementing\nincrementing_column: id\nbatch_size: 2\npoll_interval_ms: 0\n"
			c := &collector{t: t}
			if err := h.source(y).Read(context.Background(), nil, c); err != nil {
				t.Fatal(err)
			}
			evs, pos := c.take()
			if got := ids(t, evs); !slices.Equal(got, []string{"10", "20", "30", "40", "50"}) {
				t.Fatalf("first read %v", got)
			}
			if string(evs[0].Key) != `{"id":10}` || evs[0].Source.Table != h.name+"_t" {
				t.Errorf("key %s, source %+v", evs[0].Key, evs[0].Source)
			}
			row, _ := evs[0].Row()
			if row["amount"] != "1.50" && fmt.Sprint(row["amount"]) != "1.50" {
				t.Errorf("amount %#v, want the exact 1.50", row["amount"])
			}
			h.exec(db, `INSERT INTO $T_t VALUES (60, 'n6', 6, 6)`)
			if err := h.source(y).Read(context.Background(), []byte(pos), c); err != nil {
				t.Fatal(err)
			}
			evs, pos = c.take()
			if got := ids(t, evs); !slices.Equal(got, []string{"60"}) {
				t.Fatalf("after resume %v", got)
			}
			// A row below the position: it would never be read.
			h.exec(db, `INSERT INTO $T_t VALUES (15, 'late', 1, 1)`)
			err := h.source(y).Read(context.Background(), []byte(pos), c)
			if !errors.Is(err, connector.ErrFatal) || !strings.Contains(err.Error(), "not strictly increasing") {
				t.Fatalf("Read: %v, want the monotonic error", err)
			}
		})
	}
}

// TestSourceRequiresIndex refuses a column no index leads.
func TestSourceRequiresIndex(t *testing.T) {
	h := newDBs(t, false)
	h.exec(h.pg, `CREATE TABLE $T_t (id integer PRIMARY KEY, changed timestamp NOT NULL)`)
	s := h.source("url: " + pgURL + "\ntables: [$T_t]\nmode: timestamp\ntimestamp_column: changed\npoll_interval_ms: 0\n")
	err := s.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "column changed of table "+h.name+"_t is not the first column of any index") {
		t.Fatalf("Check: %v", err)
	}
	h.exec(h.pg, `CREATE INDEX ON $T_t (changed)`)
	if err := h.source("url: " + pgURL + "\ntables: [$T_t]\nmode: timestamp\ntimestamp_column: changed\npoll_interval_ms: 0\n").Check(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestSourceTimestampModes reads updated rows again; timestamp+incrementing
// is exact where rows share a timestamp and a batch ends among them.
func TestSourceTimestampModes(t *testing.T) {
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			h := newDBs(t, tg.name == "mariadb")
			db := tg.db(h)
			ts := map[string]string{"postgres": "timestamp(6)", "mariadb": "datetime(6)"}[tg.name]
			h.exec(db, `CREATE TABLE $T_t (id int PRIMARY KEY, v varchar(10), changed `+ts+` NOT NULL)`,
				`CREATE INDEX $T_changed ON $T_t (changed)`,
				`INSERT INTO $T_t VALUES (1, 'a', '2024-01-01 00:00:01'), (2, 'b', '2024-01-01 00:00:02'), (3, 'c', '2024-01-01 00:00:02'), (4, 'd', '2024-01-01 00:00:03.5')`)
			for _, mode := range []string{"timestamp", "timestamp+incrementing"} {
				y := "url: " + tg.url + "\ntables: [$T_t]\nmode: " + mode + "\ntimestamp_column: changed\nbatch_size: 2\npoll_interval_ms: 0\n"
				if mode != "timestamp" {
					y += "incrementing_column: id\n"
				}
				c := &collector{t: t}
				if err := h.source(y).Read(context.Background(), nil, c); err != nil {
					t.Fatal(err)
				}
				evs, pos := c.take()
				if got := ids(t, evs); !slices.Equal(got, []string{"1", "2", "3", "4"}) {
					t.Fatalf("%s: first read %v", mode, got)
				}
				row, _ := evs[3].Row()
				if row["changed"] != "2024-01-01T00:00:03.5" {
					t.Errorf("changed %#v", row["changed"])
				}
				h.exec(db, `UPDATE $T_t SET v = 'B', changed = '2024-01-02 00:00:00' WHERE id = 2`)
				if err := h.source(y).Read(context.Background(), []byte(pos), c); err != nil {
					t.Fatal(err)
				}
				evs, _ = c.take()
				if got := ids(t, evs); !slices.Equal(got, []string{"2"}) {
					t.Fatalf("%s: after update %v", mode, got)
				}
				h.exec(db, `UPDATE $T_t SET changed = '2024-01-01 00:00:02' WHERE id = 2`)
			}
		})
	}
}

// TestSQLSelectReadsAQueryOnce: the batch form runs a custom query once.
func TestSQLSelectReadsAQueryOnce(t *testing.T) {
	h := newDBs(t, false)
	h.exec(h.pg, `CREATE TABLE $T_t (id int PRIMARY KEY, tags text[], n numeric)`,
		`INSERT INTO $T_t VALUES (1, '{a,"b c",NULL}', 1.000), (2, '{}', NULL)`)
	cfg := decode[SelectConfig](t, strings.ReplaceAll("url: "+pgURL+"\nquery: SELECT id, tags, n, n * 2 AS twice FROM $T_t ORDER BY id\nstream: report\n", "$T", h.name))
	s, err := NewSource(context.Background(), cfg.source())
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{t: t}
	if err := s.Read(context.Background(), nil, c); err != nil {
		t.Fatal(err)
	}
	evs, _ := c.take()
	if len(evs) != 2 || evs[0].Stream != "report" {
		t.Fatalf("%d events", len(evs))
	}
	b, _ := evs[0].Data.JSON()
	if string(b) != `{"id":1,"n":1.000,"tags":["a","b c",null],"twice":2.000}` {
		t.Errorf("row %s", b)
	}
}
