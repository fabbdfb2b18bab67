package mysqlcdc

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
)

// TestDDLMidStream: ADD COLUMN, RENAME COLUMN and DROP COLUMN between
// inserts produce schema events and every row decodes with the columns it
// was written with, also when the DDL is replayed after a restart (the
// current information_schema then is newer than the binlog being read).
func TestDDLMidStream(t *testing.T) {
	c := testDB(t)
	tbl := uniqueTable(t, c, "ddl")
	mustExec(t, c, "CREATE TABLE "+tbl+" (id INT PRIMARY KEY, a VARCHAR(10))", "INSERT INTO "+tbl+" VALUES (1, 'one')")
	cfg := testConfig(tbl)
	src := newSource(t, cfg)
	em := newRecorder()
	_, stop := runRead(t, src, nil, em)
	waitFor(t, 30*time.Second, "snapshot", func() bool { ev, _ := em.snapshot(); return len(ev) >= 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	_, resume := em.snapshot()

	// While the source is down: several schema versions.
	mustExec(t, c,
		"INSERT INTO "+tbl+" VALUES (2, 'two')",
		"ALTER TABLE "+tbl+" ADD COLUMN b INT UNSIGNED NOT NULL DEFAULT 7",
		"INSERT INTO "+tbl+" VALUES (3, 'three', 4294967295)",
		"ALTER TABLE "+tbl+" RENAME COLUMN a TO a2",
		"INSERT INTO "+tbl+" VALUES (4, 'four', 4)",
		"UPDATE "+tbl+" SET a2 = 'uno' WHERE id = 1",
		"ALTER TABLE "+tbl+" DROP COLUMN b",
		"INSERT INTO "+tbl+" VALUES (5, 'five')",
		"TRUNCATE TABLE "+tbl,
	)
	em2 := newRecorder()
	_, stop = runRead(t, src, resume, em2)
	defer stop()
	waitFor(t, 30*time.Second, "replay", func() bool { ev, _ := em2.snapshot(); return len(ev) >= 9 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	ev, _ := em2.snapshot()
	var got []string
	for _, e := range ev {
		raw, _ := e.Data.JSON()
		switch e.Type {
		case events.Schema:
			var s struct {
				DDL     string `json:"ddl"`
				Table   string `json:"table"`
				Columns []struct {
					Name string `json:"name"`
				} `json:"columns"`
			}
			if err := json.Unmarshal(raw, &s); err != nil {
				t.Fatal(err)
			}
			if s.Table != tbl || !strings.Contains(s.DDL, "ALTER TABLE") || len(s.Columns) == 0 {
				t.Errorf("schema event %s", raw)
			}
			got = append(got, "schema")
		case events.Truncate:
			got = append(got, "truncate")
		default:
			got = append(got, string(e.Type)+" "+string(raw))
		}
	}
	want := []string{
		`insert {"id":2,"a":"two"}`,
		"schema",
		`insert {"id":3,"a":"three","b":4294967295}`,
		"schema",
		`insert {"id":4,"a2":"four","b":4}`,
		`update {"before":{"id":1,"a2":"one","b":7},"after":{"id":1,"a2":"uno","b":7}}`,
		"schema",
		`insert {"id":5,"a2":"five"}`,
		"truncate",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
