package redshift

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/spec"
)

// typesTable has the types Redshift and PostgreSQL share, plus a CHECK
// (PostgreSQL's, Redshift has none) that only the server can refuse.
const typesTable = `CREATE TABLE $T (
	id INTEGER NOT NULL, i2 SMALLINT, i8 BIGINT, n NUMERIC(12,2), r REAL, d DOUBLE PRECISION, b BOOLEAN,
	vc VARCHAR(8), ch CHAR(4), tx TEXT, dt DATE, ts TIMESTAMP, tz TIMESTAMPTZ, req VARCHAR(10) NOT NULL DEFAULT 'x',
	pos INTEGER CHECK (pos >= 0))`

const typesSelect = `SELECT id, i2, i8, n, r::text, d::text, b, vc, ch, tx, dt, ts, tz AT TIME ZONE 'UTC', req, pos FROM %s ORDER BY id`

// goodRows are rows of every type, at their limits; wantRows as the
// table then holds them.
var goodRows = []string{
	`{"id":1,"i2":-32768,"i8":9223372036854775807,"n":9999999999.99,"r":1.5,"d":-2.5e-300,"b":true,"vc":"abcdefgh","ch":"ab","tx":"quote ' dq \" backslash \\ tab \t ünï €","dt":"2024-02-29","ts":"2024-05-01T12:34:56.123456","tz":"2024-05-01T14:34:56.5+02:00","req":"r","pos":0}`,
	`{"id":2,"i2":32767,"i8":-9223372036854775808,"n":"-0.01","r":"NaN","d":"Infinity","b":"false","vc":"ü","ch":null,"tx":"{\"a\":1}","dt":"0001-01-01","ts":"1970-01-01T00:00:00","tz":"1970-01-01T00:00:00Z","req":"","pos":null}`,
	`{"id":3,"tx":{"nested":[1,2]},"extra_field_without_column":1}`,
}

var wantRows = []string{
	`1|-32768|9223372036854775807|9999999999.99|1.5|-2.5e-300|true|abcdefgh|ab  |quote ' dq " backslash \ tab 	 ünï €|2024-02-29T00:00:00Z|2024-05-01T12:34:56.123456Z|2024-05-01T12:34:56.5Z|r|0`,
	`2|32767|-9223372036854775808|-0.01|NaN|Infinity|false|ü|∅|{"a":1}|0001-01-01T00:00:00Z|1970-01-01T00:00:00Z|1970-01-01T00:00:00Z||∅`,
	`3|∅|∅|∅|∅|∅|∅|∅|∅|{"nested":[1,2]}|∅|∅|∅|x|∅`,
}

// badRows do not fit a column; the wanted reason names it.
var badRows = []struct{ row, want string }{
	{`{"id":10,"i2":32768}`, "column i2 (smallint): 32768 overflows smallint"},
	{`{"id":11,"i8":9223372036854775808}`, "column i8 (bigint): 9223372036854775808 overflows bigint"},
	{`{"id":12,"n":100000000000}`, "column n (numeric(12,2)): 100000000000 overflows numeric(12,2)"},
	{`{"id":13,"b":"maybe"}`, `column b (boolean): expected a boolean, got "maybe"`},
	{`{"id":14,"vc":"ünïcödé"}`, "column vc (character varying(8)): 11 bytes exceed character varying(8)"},
	{`{"id":15,"dt":"2024-02-30"}`, "column dt (date)"},
	{`{"id":16,"req":null}`, "column req (character varying(10)): null into a NOT NULL column"},
	{`{"id":17,"i8":"12abc"}`, `column i8 (bigint): expected an integer, got "12abc"`},
	{`{"id":18,"i2":1.5}`, "column i2 (smallint): 1.5 is not an integer"},
	{`{"id":19,"pos":-1}`, "refused by the server"}, // the CHECK: found by halving the batch
	{`{"nothing":1}`, "no field of the row is a column"},
}

// TestTypesAndDeadLetters writes every shared type through INSERT and
// through the COPY path (emulated, see emulateCopy), and sends each bad
// row to the dead-letter topic with its column and reason while the rest
// of the batch is written.
func TestTypesAndDeadLetters(t *testing.T) {
	for _, path := range []string{"insert", "copy"} {
		t.Run(path, func(t *testing.T) {
			table, db := pgTable(t, typesTable)
			y := "url: " + pgURL + "\ntable: " + table + "\n"
			var log *copyLog
			var client *s3.Client
			if path == "copy" {
				var url string
				url, client = fakeS3(t)
				y += "copy_threshold: 1\n" + s3Block(url)
			}
			s := newSink(t, y)
			if path == "copy" {
				log = emulateCopy(t, s, client)
			}
			var batch []*events.Event
			for _, r := range goodRows {
				batch = append(batch, ev(events.Insert, r))
			}
			for _, b := range badRows {
				batch = append(batch, ev(events.Insert, b.row))
			}
			batch = append(batch, ev(events.Schema, `{}`)) // nothing to write
			err := s.Write(context.Background(), batch)
			var we *connector.WriteError
			if !errors.As(err, &we) {
				t.Fatalf("want a WriteError, got %v", err)
			}
			if len(we.Failed) != len(badRows) {
				t.Errorf("%d failed, want %d: %v", len(we.Failed), len(badRows), we.Failed)
			}
			for i, b := range badRows {
				got := we.Failed[len(goodRows)+i]
				if got == nil || !strings.Contains(got.Error(), b.want) {
					t.Errorf("%s: got %v, want %q", b.row, got, b.want)
				}
			}
			got := query(t, db, fmt.Sprintf(typesSelect, table))
			if strings.Join(got, "\n") != strings.Join(wantRows, "\n") {
				t.Errorf("table:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantRows, "\n"))
			}
			if path == "copy" {
				if len(log.stmts) == 0 {
					t.Fatal("no COPY ran")
				}
				// Read back independently: the first staged file holds
				// the good rows as JSON with typed values.
				first := log.objects[0]
				if len(first) < len(goodRows) || fmt.Sprint(first[0]["i8"]) != "9223372036854775807" || first[0]["b"] != true ||
					first[0]["ts"] != "2024-05-01 12:34:56.123456" || first[0]["tz"] != "2024-05-01 12:34:56.5+00" {
					t.Errorf("staged rows: %v", first)
				}
				if _, ok := first[0]["extra_field_without_column"]; ok {
					t.Error("a field without a column was staged")
				}
				// Files of committed COPYs are deleted (keep_files: false).
				list, err := client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("stage")})
				if err != nil || len(list.Contents) != 0 {
					t.Errorf("staged files left: %v %v", err, list)
				}
			}
		})
	}
}

// cdcBatch is a CDC batch over keys 1-5: inserts, an update, a delete, a
// key change (3 → 4) and a re-insert after a delete, ending in a state
// that applying the events in order gives.
func cdcBatch() []*events.Event {
	return []*events.Event{
		keyed(events.Insert, `{"id":1}`, `{"id":1,"name":"a","qty":1}`),
		keyed(events.Insert, `{"id":2}`, `{"id":2,"name":"b","qty":2}`),
		keyed(events.Insert, `{"id":3}`, `{"id":3,"name":"c","qty":3}`),
		keyed(events.Update, `{"id":1}`, `{"before":{"id":1,"name":"a","qty":1},"after":{"id":1,"name":"a2","qty":10}}`),
		keyed(events.Delete, `{"id":2}`, `{"id":2,"name":"b","qty":2}`),
		keyed(events.Update, `{"id":4}`, `{"before":{"id":3,"name":"c","qty":3},"after":{"id":4,"name":"c","qty":4}}`),
		keyed(events.Insert, `{"id":5}`, `{"id":5,"name":"e","qty":5}`),
		keyed(events.Delete, `{"id":5}`, `{"id":5}`),
		keyed(events.Insert, `{"id":5}`, `{"id":5,"name":"e2","qty":50}`),
		keyed(events.Delete, `{"id":9}`, `{"id":9}`), // a key the table never had
	}
}

var cdcWant = []string{"1|a2|10", "4|c|4", "5|e2|50", "7|kept|7"}

// TestUpsertMergeAndDeleteInsert runs the CDC batch through both upsert
// methods and both load paths on the real PostgreSQL (MERGE needs 15+),
// then redelivers it: the table is the same afterwards.
func TestUpsertMergeAndDeleteInsert(t *testing.T) {
	for _, method := range []string{UpsertMerge, UpsertDeleteInsert} {
		for _, path := range []string{"insert", "copy"} {
			t.Run(method+"/"+path, func(t *testing.T) {
				table, db := pgTable(t, `CREATE TABLE $T (id INTEGER PRIMARY KEY, name VARCHAR(20), qty INTEGER NOT NULL)`)
				if _, err := db.Exec("INSERT INTO " + table + " VALUES (7, 'kept', 7), (2, 'old', 0)"); err != nil {
					t.Fatal(err)
				}
				y := fmt.Sprintf("url: %s\ntable: public.%s\nmode: upsert\nupsert_method: %s\ndelete:\n  enabled: true\n", pgURL, table, method)
				var log *copyLog
				if path == "copy" {
					url, client := fakeS3(t)
					y += "copy_threshold: 2\n" + s3Block(url)
					s := newSink(t, y)
					log = emulateCopy(t, s, client)
					runCDC(t, s, db, table)
					if len(log.stmts) == 0 || log.stmts[0].cols[len(log.stmts[0].cols)-1] != deletedCol {
						t.Errorf("COPY into the staging table: %+v", log.stmts)
					}
					return
				}
				runCDC(t, newSink(t, y), db, table)
			})
		}
	}
}

func runCDC(t *testing.T, s *Sink, db *sql.DB, table string) {
	t.Helper()
	for round := 1; round <= 2; round++ { // the second is a redelivery
		if err := s.Write(context.Background(), cdcBatch()); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		got := query(t, db, "SELECT id, name, qty FROM "+table+" ORDER BY id")
		if strings.Join(got, " ") != strings.Join(cdcWant, " ") {
			t.Fatalf("round %d: %v, want %v", round, got, cdcWant)
		}
	}
}

// TestInsertModeDeletes: insert mode appends rows and applies deletes
// in batch order (a delete between two inserts of a key removes the
// first only).
func TestInsertModeDeletes(t *testing.T) {
	table, db := pgTable(t, `CREATE TABLE $T (id INTEGER, v TEXT)`)
	s := newSink(t, "url: "+pgURL+"\ntable: "+table+"\npk_fields: [id]\ndelete:\n  enabled: true\n")
	err := s.Write(context.Background(), []*events.Event{
		ev(events.Insert, `{"id":1,"v":"a"}`),
		ev(events.Insert, `{"id":2,"v":"b"}`),
		ev(events.Delete, `{"id":1}`),
		ev(events.Insert, `{"id":1,"v":"c"}`),
		ev(events.Insert, `{"id":2,"v":"d"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	got := query(t, db, "SELECT id, v FROM "+table+" ORDER BY id, v")
	if strings.Join(got, " ") != "1|c 2|b 2|d" {
		t.Errorf("%v", got)
	}
}

// TestTransactionRollsBack: a batch that fails (here the table lost a
// column under the sink) leaves nothing behind, and the next batch reads
// the table again.
func TestTransactionRollsBack(t *testing.T) {
	table, db := pgTable(t, `CREATE TABLE $T (id INTEGER PRIMARY KEY, v TEXT, w TEXT)`)
	s := newSink(t, "url: "+pgURL+"\ntable: "+table+"\nmode: upsert\nmax_retries: 0\n")
	if err := s.Write(context.Background(), []*events.Event{ev(events.Insert, `{"id":1,"v":"a","w":"x"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("ALTER TABLE " + table + " DROP COLUMN w"); err != nil {
		t.Fatal(err)
	}
	batch := []*events.Event{ev(events.Insert, `{"id":2,"v":"b"}`), ev(events.Insert, `{"id":3,"v":"c","w":"y"}`)}
	err := s.Write(context.Background(), batch)
	if err == nil || resilience.Retryable(err) {
		t.Fatalf("want a schema error, got %v", err)
	}
	if got := query(t, db, "SELECT count(*) FROM "+table); got[0] != "1" {
		t.Fatalf("rows after a failed batch: %v", got)
	}
	// Read again: w is gone, so the field is left out and both rows land.
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if got := query(t, db, "SELECT id, v FROM "+table+" ORDER BY id"); strings.Join(got, " ") != "1|a 2|b 3|c" {
		t.Errorf("%v", got)
	}
}

// TestEnvelopeLayout writes the reference's warehouse row.
func TestEnvelopeLayout(t *testing.T) {
	table, db := pgTable(t, `CREATE TABLE $T (event_type VARCHAR(16), stream VARCHAR(64), namespace VARCHAR(64), timestamp TIMESTAMPTZ, data VARCHAR(65535), metadata VARCHAR(65535), _ingested_at TIMESTAMPTZ)`)
	s := newSink(t, "url: "+pgURL+"\ntable: "+table+"\nlayout: envelope\n")
	e := ev(events.Update, `{"before":{"id":1},"after":{"id":1,"v":2}}`)
	if err := s.Write(context.Background(), []*events.Event{e}); err != nil {
		t.Fatal(err)
	}
	got := query(t, db, "SELECT event_type, stream, namespace, data, metadata FROM "+table)
	if len(got) != 1 || !strings.HasPrefix(got[0], `update|orders||{"before":{"id":1},"after":{"id":1,"v":2}}|{`) {
		t.Errorf("%v", got)
	}
}

// TestCheck: check passes on a table it may write, names the table
// when it is missing, and names the privilege a user lacks.
func TestCheck(t *testing.T) {
	table, db := pgTable(t, `CREATE TABLE $T (id INTEGER PRIMARY KEY, v TEXT)`)
	url, _ := fakeS3(t)
	s := newSink(t, "url: "+pgURL+"\ntable: "+table+"\nmode: upsert\n"+s3Block(url))
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	missing := newSink(t, "url: "+pgURL+"\ntable: "+table+"_missing\n")
	if err := missing.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing table: %v", err)
	}
	user := "rs_reader_" + strings.TrimPrefix(table, "rs_")
	for _, q := range []string{"CREATE ROLE " + user + " LOGIN", "GRANT SELECT ON " + table + " TO " + user} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_, _ = db.Exec("REVOKE ALL ON " + table + " FROM " + user)
		_, _ = db.Exec("DROP ROLE " + user)
	})
	ro := newSink(t, "url: "+strings.Replace(pgURL, "postgres@", user+"@", 1)+"\ntable: "+table+"\n")
	err := ro.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "INSERT INTO") || resilience.ClassOf(err) != resilience.Auth {
		t.Errorf("read-only user: %v (%v)", err, resilience.ClassOf(err))
	}
	// The staging bucket must exist.
	nob := newSink(t, "url: "+pgURL+"\ntable: "+table+"\n"+strings.Replace(s3Block(url), "bucket: stage", "bucket: nobucket", 1))
	if err := nob.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "s3") {
		t.Errorf("missing bucket: %v", err)
	}
}

// TestBreakerAndRetries: a server that is not there is retried, then
// after failure_threshold failed batches the circuit opens and batches
// are refused without connecting.
func TestBreakerAndRetries(t *testing.T) {
	s := newSink(t, "url: postgres://u@127.0.0.1:1/db?connect_timeout=1\ntable: t\nmax_retries: 1\ninitial_backoff_ms: 1\nmax_backoff_ms: 1\ncircuit_breaker:\n  failure_threshold: 2\n")
	for i := 0; i < 2; i++ {
		if err := s.Write(context.Background(), []*events.Event{ev(events.Insert, `{"id":1}`)}); err == nil {
			t.Fatal("wrote to nowhere")
		}
	}
	err := s.Write(context.Background(), []*events.Event{ev(events.Insert, `{"id":1}`)})
	if err == nil || !strings.Contains(err.Error(), "circuit breaker open") || s.rejected.Value() != 1 {
		t.Errorf("third batch: %v (rejected %d)", err, s.rejected.Value())
	}
}

// TestConfigProblems: config errors name their YAML path.
func TestConfigProblems(t *testing.T) {
	for y, path := range map[string]string{
		"url: mysql://x/y\ntable: t\n":                                       "url",
		"url: postgres://h/db\ntable: a.b.c\n":                               "table",
		"url: postgres://h/db\ntable: t\ns3:\n  bucket: b\n":                 "iam_role",
		"url: postgres://h/db\ntable: t\niam_role: role\ns3:\n  bucket: b\n": "iam_role",
		"url: postgres://h/db\ntable: t\nlayout: envelope\nmode: upsert\n":   "layout",
		"url: postgres://h/db\ntable: t\nmode: merge\n":                      "mode",
		"url: postgres://h/db\ntable: t\npk_fields: [\"a b\"]\n":             "pk_fields[0]",
	} {
		_, ps := spec.DecodeString[Config](y, "config")
		found := false
		for _, p := range ps {
			found = found || strings.HasSuffix(p.Path, path)
		}
		if !found {
			t.Errorf("%q: problems %v, want one at %s", y, ps, path)
		}
	}
	if _, ps := spec.DecodeString[Config]("url: postgres://u:secretpw@h/db\ntable: t\niam_role: default\ns3:\n  bucket: b\n", "config"); len(ps) > 0 {
		t.Errorf("valid config: %v", ps)
	}
}
