package rdbc

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
)

func ev(t events.Type, data string, key string) *events.Event {
	e := events.New(t, "orders", events.RawPayload([]byte(data)))
	if key != "" {
		e.Key = json.RawMessage(key)
	}
	return e
}

type target struct {
	name string
	db   func(h *dbs) *sql.DB
	url  string
	ddl  string
}

func targets() []target {
	return []target{
		{"postgres", func(h *dbs) *sql.DB { return h.pg }, pgURL,
			`CREATE TABLE $T_t (id integer PRIMARY KEY, name varchar(10) NOT NULL, amount numeric(6,2), qty smallint)`},
		{"mariadb", func(h *dbs) *sql.DB { return h.my }, myURL,
			`CREATE TABLE $T_t (id int PRIMARY KEY, name varchar(10) NOT NULL, amount decimal(6,2), qty smallint)`},
	}
}

// TestSinkUpsertDeleteAndBadRows writes one batch of CDC events with bad
// rows among them in upsert mode with deletes: the good rows commit in
// order (a key written twice, a key changed by an update), every bad row
// is reported with the server's reason.
func TestSinkUpsertDeleteAndBadRows(t *testing.T) {
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			h := newDBs(t, tg.name == "mariadb")
			db := tg.db(h)
			h.exec(db, tg.ddl)
			s := h.sink("url: " + tg.url + "\ntable: $T_t\nmode: upsert\ndelete:\n  enabled: true\n")
			if err := s.Check(context.Background()); err != nil {
				t.Fatal(err)
			}
			batch := []*events.Event{
				0:  ev(events.Insert, `{"id":1,"name":"one","amount":1.10,"qty":1}`, `{"id":1}`),
				1:  ev(events.Insert, `{"id":2,"name":"two","amount":2.20,"qty":2}`, `{"id":2}`),
				2:  ev(events.Insert, `{"id":3,"name":"three","amount":3.30,"qty":3}`, `{"id":3}`),
				3:  ev(events.Update, `{"before":{"id":2},"after":{"id":2,"name":"TWO","amount":2.22,"qty":22}}`, `{"id":2}`),
				4:  ev(events.Insert, `{"id":4,"name":"far too long a name","amount":4,"qty":4}`, `{"id":4}`),
				5:  ev(events.Insert, `{"id":5,"name":"five","amount":5,"qty":100000}`, `{"id":5}`),
				6:  ev(events.Insert, `{"id":6,"name":null,"amount":6,"qty":6}`, `{"id":6}`),
				7:  ev(events.Delete, `{"id":3,"name":"three","amount":3.30,"qty":3}`, `{"id":3}`),
				8:  ev(events.Update, `{"before":{"id":1},"after":{"id":7,"name":"seven","amount":7,"qty":7}}`, `{"id":7}`),
				9:  ev(events.Insert, `{"id":9,"name":"nine","colour":"red"}`, `{"id":9}`),
				10: ev(events.Insert, `{"id":8,"name":"eight","amount":8}`, `{"id":8}`),
				11: ev(events.Insert, `{"id":8,"name":"EIGHT","amount":8.8}`, `{"id":8}`),
				12: ev(events.Insert, `{"id":10,"name":"ten","amount":12345.678}`, `{"id":10}`),
				13: events.New(events.Schema, "orders", events.RawPayload([]byte(`{}`))),
			}
			err := s.Write(context.Background(), wire(t, batch))
			var we *connector.WriteError
			if !errors.As(err, &we) {
				t.Fatalf("Write: %v, want a WriteError", err)
			}
			var idx []int
			for i, e := range we.Failed {
				idx = append(idx, i)
				t.Logf("event %d: %v", i, e)
			}
			sort.Ints(idx)
			if want := []int{4, 5, 6, 9, 12}; !slices.Equal(idx, want) {
				t.Errorf("failed events %v, want %v", idx, want)
			}
			if !strings.Contains(we.Failed[9].Error(), "column colour does not exist") {
				t.Errorf("event 9: %v", we.Failed[9])
			}
			got := h.rows(db, `SELECT id, name, amount, qty FROM $T_t ORDER BY id`)
			want := []string{"2|TWO|2.22|22", "7|seven|7.00|7", "8|EIGHT|8.80|NULL"}
			if !slices.Equal(got, want) {
				t.Errorf("rows:\n got %q\nwant %q", got, want)
			}
		})
	}
}

// TestSinkInsertAndUpdateModes: insert reports a duplicate key, update
// one with no row, each as a bad row.
func TestSinkInsertAndUpdateModes(t *testing.T) {
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			h := newDBs(t, tg.name == "mariadb")
			db := tg.db(h)
			h.exec(db, tg.ddl, `INSERT INTO $T_t VALUES (1, 'one', 1, 1)`)
			ins := h.sink("url: " + tg.url + "\ntable: $T_t\n")
			err := ins.Write(context.Background(), []*events.Event{
				ev(events.Record, `{"id":1,"name":"dup"}`, ""),
				ev(events.Record, `{"id":2,"name":"two"}`, ""),
			})
			var we *connector.WriteError
			if !errors.As(err, &we) || len(we.Failed) != 1 || we.Failed[0] == nil {
				t.Fatalf("insert: %v, want event 0 failed", err)
			}
			upd := h.sink("url: " + tg.url + "\ntable: $T_t\nmode: update\npk_fields: [id]\n")
			err = upd.Write(context.Background(), []*events.Event{
				ev(events.Record, `{"id":2,"name":"TWO","qty":5}`, ""),
				ev(events.Record, `{"id":3,"name":"three"}`, ""),
			})
			if !errors.As(err, &we) || len(we.Failed) != 1 || !errors.Is(we.Failed[1], errNoRow) {
				t.Fatalf("update: %v, want event 1 failed for its missing row", err)
			}
			got := h.rows(db, `SELECT id, name, qty FROM $T_t ORDER BY id`)
			if want := []string{"1|one|1", "2|TWO|5"}; !slices.Equal(got, want) {
				t.Errorf("rows:\n got %q\nwant %q", got, want)
			}
		})
	}
}

// TestSinkAutoEvolve adds a column an event brings; without auto_create
// a missing table is fatal, and Check says so.
func TestSinkAutoEvolveAndMissingTable(t *testing.T) {
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			h := newDBs(t, tg.name == "mariadb")
			db := tg.db(h)
			h.exec(db, tg.ddl)
			s := h.sink("url: " + tg.url + "\ntable: $T_t\nauto_evolve: true\n")
			err := s.Write(context.Background(), []*events.Event{
				ev(events.Insert, `{"id":1,"name":"one"}`, ""),
				ev(events.Insert, `{"id":2,"name":"two","note":"hello","score":1.5}`, ""),
			})
			if err != nil {
				t.Fatal(err)
			}
			got := h.rows(db, `SELECT id, name, note, score FROM $T_t ORDER BY id`)
			// A decimal of unknown scale: numeric, or MariaDB's widest.
			score := map[string]string{"postgres": "1.5", "mariadb": "1.500000000000000000000000000000"}[tg.name]
			if want := []string{"1|one|NULL|NULL", "2|two|hello|" + score}; !slices.Equal(got, want) {
				t.Errorf("rows:\n got %q\nwant %q", got, want)
			}
			missing := h.sink("url: " + tg.url + "\ntable: $T_nope\n")
			if err := missing.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "does not exist") {
				t.Errorf("Check: %v", err)
			}
			err = missing.Write(context.Background(), []*events.Event{ev(events.Insert, `{"id":1}`, "")})
			if !errors.Is(err, connector.ErrFatal) {
				t.Errorf("Write to a missing table: %v, want fatal", err)
			}
		})
	}
}

func TestTableTemplate(t *testing.T) {
	s := &Sink{cfg: SinkConfig{Table: "mirror_{schema}.{table}_{stream}"}}
	e := ev(events.Insert, `{}`, "")
	e.Source = &events.SourceInfo{Schema: "public", Table: "orders"}
	e.Stream = "cdc.shop"
	if got := s.tableName(e); got != "mirror_public.orders_cdc.shop" {
		t.Errorf("got %s", got)
	}
	s.cfg.Table = "fixed"
	if got := s.tableName(e); got != "fixed" {
		t.Errorf("got %s", got)
	}
}
