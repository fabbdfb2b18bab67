package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// debeziumDoc reads a Debezium fixture (see testdata/debezium/ORIGIN.md)
// as JSON: the AsciiDoc attribute, the "{ ... }" abbreviations and
// trailing commas are replaced, nothing else.
func debeziumDoc(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "debezium", name))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "{debezium-version}", "3.0.0.Final")
	s = strings.ReplaceAll(s, "{ ... }", "null")
	s = regexp.MustCompile(`\{\s*\.\.\.\s*\}`).ReplaceAllString(s, "null")
	s = regexp.MustCompile(`(//\s*)?<\d*>`).ReplaceAllString(s, "")
	s = regexp.MustCompile(`,(\s*[}\]])`).ReplaceAllString(s, "$1")
	var v map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if p, ok := v["payload"].(map[string]any); ok {
		return p
	}
	return v
}

// debeziumDifferences are the documented, intentional differences between
// our envelope and Debezium's examples (README "Encodings" lists each).
// Any other field must have the same type and value.
var debeziumDifferences = map[string]string{
	"source.version":         "names rivven-connect, not a Debezium release",
	"source.snapshot":        `always a string ("true", "last", "false") as Debezium's connectors write it since 1.x; the examples show a boolean`,
	"source.sequence":        "written on every PostgreSQL and SQL Server event (null on SQL Server, as Debezium writes it); the examples leave it out",
	"source.event_serial_no": "a number, as the source schema in Debezium's own SQL Server example declares it; its payloads show a string",
	"source.ts_us":           "written (commit time in µs); the 0.10-era MySQL examples predate it",
	"source.ts_ns":           "written (commit time in ns); the 0.10-era MySQL examples predate it",
	"ts_us":                  "written (processing time in µs); the 0.10-era MySQL examples predate it",
	"ts_ns":                  "written (processing time in ns); the 0.10-era MySQL examples predate it",
	"source.thread":          "null: the binlog reader does not track the thread of the statement",
	"source.query":           "null: the SQL text is not captured (Debezium's include.query, off by default)",
	"before":                 "a truncate has before: null and after: null, as Kafka Connect's JsonConverter writes an envelope; the example leaves them out",
	"after":                  "see before",
}

// compareDebezium reports every field where ours and theirs differ in
// presence, type or value, other than the documented differences.
func compareDebezium(t *testing.T, name string, ours, theirs map[string]any) {
	t.Helper()
	var walk func(path string, a, b map[string]any)
	walk = func(path string, a, b map[string]any) {
		keys := map[string]bool{}
		for k := range a {
			keys[k] = true
		}
		for k := range b {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			p := path + k
			if p == "schema" {
				continue
			}
			av, aok := a[k]
			bv, bok := b[k]
			am, aIsObj := av.(map[string]any)
			bm, bIsObj := bv.(map[string]any)
			if aIsObj && bIsObj {
				walk(p+".", am, bm)
				continue
			}
			same := aok == bok && fmt.Sprintf("%T %v", av, av) == fmt.Sprintf("%T %v", bv, bv)
			if same {
				continue
			}
			if _, ok := debeziumDifferences[p]; ok {
				continue
			}
			t.Errorf("%s: %s: ours %T %v (present %v), Debezium's %T %v (present %v)", name, p, av, av, aok, bv, bv, bok)
		}
	}
	walk("", ours, theirs)
}

func encodeDebeziumMap(t *testing.T, c Codec, e *Event) map[string]any {
	t.Helper()
	b, err := c.Append(nil, e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return m
}

// fixedDebezium is a Debezium codec with a clock.
func fixedDebezium(t *testing.T, opts DebeziumOptions, now time.Time) Codec {
	t.Helper()
	c, err := NewCodec(CodecDebezium, opts, DefaultCloudEventsOptions())
	if err != nil {
		t.Fatal(err)
	}
	c.(*debeziumCodec).now = func() time.Time { return now }
	return c
}

// pgCustomerEvent is what postgres-cdc emits for a change of the
// documentation's customers table (id SERIAL PRIMARY KEY, first_name,
// last_name, email), on a source named PostgreSQL_server.
func pgCustomerEvent(typ Type, data string, txid string, commitNS int64, lsn string) *Event {
	commit := time.Unix(0, commitNS).UTC()
	seq := uint64(1)
	return &Event{Type: typ, Stream: "customers", Namespace: ptr("public"), Timestamp: commit,
		Data: RawPayload([]byte(data)), Key: []byte(`{"id":1}`),
		Metadata: Metadata{TransactionID: txid, Sequence: &seq},
		Source: &SourceInfo{Connector: "postgres-cdc", Name: "PostgreSQL_server", Database: "postgres", Schema: "public",
			Table: "customers", Position: lsn, CommitTS: &commit}}
}

// Our envelope for the changes of Debezium's PostgreSQL documentation has
// the fields, types and values of its examples, apart from the documented
// differences.
func TestDebeziumMatchesPostgresDocs(t *testing.T) {
	const anne = `{"id":1,"first_name":"Anne","last_name":"Kretchmar","email":"annek@noanswer.org"}`
	for _, c := range []struct {
		file string
		ev   *Event
		opts func(*DebeziumOptions)
	}{
		{"postgresql-create.json", func() *Event {
			e := pgCustomerEvent(Insert, anne, "555", 1559033904863123000, "0/16E9058")
			e.Source.LastCommit = "0/16E904F"
			e.Source.Snapshot = true // the example's source says snapshot
			return e
		}(), nil},
		{"postgresql-update.json", pgCustomerEvent(Update,
			`{"before":{"id":1},"after":{"id":1,"first_name":"Anne Marie","last_name":"Kretchmar","email":"annek@noanswer.org"}}`,
			"556", 1559033904863769000, "0/16E9058"), nil},
		{"postgresql-delete.json", pgCustomerEvent(Delete, `{"id":1}`, "556", 1559033904863852000, "0/2C5E2F8"), nil},
		{"postgresql-truncate.json", pgCustomerEvent(Truncate, `null`, "556", 1559033904863112000, "0/2C5E2F8"),
			func(o *DebeziumOptions) { o.SkippedOperations = "none" }},
	} {
		t.Run(c.file, func(t *testing.T) {
			theirs := debeziumDoc(t, c.file)
			opts := DefaultDebeziumOptions()
			if c.opts != nil {
				c.opts(&opts)
			}
			// Debezium's top-level ts_* is when its connector processed the
			// change: run our clock at the example's.
			now := time.Unix(0, int64(theirs["ts_ns"].(float64))).UTC()
			if ns, err := json.Number(fmt.Sprint(theirs["ts_ns"])).Int64(); err == nil {
				now = time.Unix(0, ns).UTC()
			}
			ours := encodeDebeziumMap(t, fixedDebezium(t, opts, now), c.ev)
			// float64 cannot hold nanoseconds exactly: compare ts_ns apart.
			for _, m := range []map[string]any{ours, theirs} {
				delete(m, "ts_ns")
				if s, ok := m["source"].(map[string]any); ok {
					delete(s, "ts_ns")
				}
			}
			compareDebezium(t, c.file, ours, theirs)
		})
	}
}

// The same for the MySQL envelopes of Debezium's own serde tests.
func TestDebeziumMatchesMySQLTestResources(t *testing.T) {
	const anne = `{"id":1004,"first_name":"Anne","last_name":"Kretchmar","email":"annek@noanswer.org"}`
	mk := func(typ Type, data string) *Event {
		commit := time.Unix(0, 0).UTC()
		seq := uint64(1)
		return &Event{Type: typ, Stream: "customers", Namespace: ptr("inventory"), Timestamp: commit,
			Data: RawPayload([]byte(data)), Key: []byte(`{"id":1004}`),
			Metadata: Metadata{Position: `{"file":"mysql-bin.000003","pos":154,"skip":1}`, Sequence: &seq,
				Extra: []Field{{Key: "server_id", Value: json.RawMessage("0")}}},
			Source: &SourceInfo{Connector: "mysql-cdc", Name: "mysql-server-1", Database: "inventory", Table: "customers",
				Position: "mysql-bin.000003:154", Commit: "mysql-bin.000003:154", CommitTS: &commit}}
	}
	for _, c := range []struct {
		file string
		ev   *Event
	}{
		{"mysql-serde-without-schema.json", mk(Insert, anne)},
		{"mysql-serde-update.json", mk(Update, `{"before":{"id":1004,"first_name":"Anne-Marie","last_name":"Kretchmar","email":"annek@noanswer.org"},"after":`+anne+`}`)},
	} {
		t.Run(c.file, func(t *testing.T) {
			theirs := debeziumDoc(t, c.file)
			now := time.UnixMilli(int64(theirs["ts_ms"].(float64))).UTC()
			ours := encodeDebeziumMap(t, fixedDebezium(t, DefaultDebeziumOptions(), now), c.ev)
			compareDebezium(t, c.file, ours, theirs)
		})
	}
}

// The same for the SQL Server documentation's update and delete examples:
// sqlserver-cdc's position is "0x<__$start_lsn>:0x<__$seqval>" and its
// commit the transaction's __$start_lsn, in the change table's binary(10).
func TestDebeziumMatchesSQLServerDocs(t *testing.T) {
	const before = `{"id":1005,"first_name":"john","last_name":"doe","email":"john.doe@example.org"}`
	const after = `{"id":1005,"first_name":"john","last_name":"doe","email":"noreply@example.org"}`
	mk := func(typ Type, data string, commitMS int64, startLSN, seqval string) *Event {
		commit := time.UnixMilli(commitMS).UTC()
		return &Event{Type: typ, Stream: "customers", Namespace: ptr("dbo"), Timestamp: commit,
			Data: RawPayload([]byte(data)), Key: []byte(`{"id":1005}`),
			Source: &SourceInfo{Connector: "sqlserver-cdc", Name: "server1", Database: "testDB", Schema: "dbo", Table: "customers",
				Position: "0x" + startLSN + ":0x" + seqval, Commit: "0x" + startLSN, CommitTS: &commit}}
	}
	for _, c := range []struct {
		file string
		ev   *Event
	}{
		{"sqlserver-update.json", mk(Update, `{"before":`+before+`,"after":`+after+`}`, 1559729995937,
			"0000002700000ac00007", "0000002700000ac00002")},
		{"sqlserver-delete.json", mk(Delete, after, 1559730445243, "0000002700000db00007", "0000002700000db00005")},
	} {
		t.Run(c.file, func(t *testing.T) {
			theirs := debeziumDoc(t, c.file)
			now := time.UnixMilli(int64(theirs["ts_ms"].(float64))).UTC()
			ours := encodeDebeziumMap(t, fixedDebezium(t, DefaultDebeziumOptions(), now), c.ev)
			for _, m := range []map[string]any{ours, theirs} {
				delete(m, "ts_us")
				delete(m, "ts_ns")
				if s, ok := m["source"].(map[string]any); ok {
					delete(s, "ts_ns")
				}
			}
			compareDebezium(t, c.file, ours, theirs)
			// A listed difference in type only: the number is the example's.
			o, d := ours["source"].(map[string]any)["event_serial_no"], theirs["source"].(map[string]any)["event_serial_no"]
			if fmt.Sprint(o) != fmt.Sprint(d) {
				t.Errorf("event_serial_no: ours %v, Debezium's %v", o, d)
			}
		})
	}
	// A snapshot row has only the LSN it was read at.
	snap := mk(SnapshotRead, after, 1559730445243, "0000002700000db00007", "")
	snap.Source.Position, snap.Source.Snapshot = "", true
	src := encodeDebeziumMap(t, fixedDebezium(t, DefaultDebeziumOptions(), time.Now()), snap)["source"].(map[string]any)
	if src["change_lsn"] != nil || src["commit_lsn"] != "00000027:00000db0:0007" || src["event_serial_no"] != nil {
		t.Errorf("snapshot row source: %v", src)
	}
}

// Every documented difference is listed in the README's encodings section.
func TestDebeziumDifferencesInReadme(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for k := range debeziumDifferences {
		if !strings.Contains(string(b), "`"+k+"`") {
			t.Errorf("README.md does not list the Debezium difference `%s`", k)
		}
	}
	for k, why := range schemaDifferences {
		if !strings.HasPrefix(why, "see ") && !strings.Contains(string(b), "`"+k+"`") {
			t.Errorf("README.md does not list the Debezium schema difference `%s`", k)
		}
	}
}

// Debezium's defaults: truncates skipped (Flink's debezium-json fails on
// op "t"), schema changes never in the data stream, a tombstone after each
// delete; skipped_operations none emits truncates.
func TestDebeziumDefaults(t *testing.T) {
	tr := pgCustomerEvent(Truncate, `null`, "556", 1, "0/1")
	if _, err := Debezium.Append(nil, tr); !errors.Is(err, ErrSkipped) {
		t.Errorf("truncate under the defaults: %v, want ErrSkipped", err)
	}
	sc := &Event{Type: Schema, Stream: "customers", Timestamp: time.Unix(1, 0), Data: RawPayload([]byte(`{}`))}
	if _, err := Debezium.Append(nil, sc); !errors.Is(err, ErrSkipped) {
		t.Errorf("schema event under the defaults: %v, want ErrSkipped", err)
	}
	if _, ok := Debezium.(Diverter).Divert(sc); ok {
		t.Error("schema event diverted without schema_changes_topic")
	}
	del := pgCustomerEvent(Delete, `{"id":1}`, "556", 1, "0/1")
	if !Debezium.(Tombstoner).Tombstone(del) {
		t.Error("no tombstone after a delete by default")
	}
	opts := DefaultDebeziumOptions()
	opts.SkippedOperations = "none"
	opts.TombstonesOnDelete = false
	c := fixedDebezium(t, opts, time.Unix(2, 0))
	if m := encodeDebeziumMap(t, c, tr); m["op"] != "t" {
		t.Errorf("truncate with skipped_operations none: %v", m)
	}
	if c.(Tombstoner).Tombstone(del) {
		t.Error("tombstone with tombstones_on_delete false")
	}
	opts.SkippedOperations = "c,u"
	c = fixedDebezium(t, opts, time.Unix(2, 0))
	if _, err := c.Append(nil, pgCustomerEvent(Insert, `{"id":1}`, "1", 1, "0/1")); !errors.Is(err, ErrSkipped) {
		t.Errorf("insert with skipped_operations c,u: %v", err)
	}
	if _, err := NewCodec(CodecDebezium, DebeziumOptions{SkippedOperations: "c,x"}, CloudEventsOptions{}); err == nil ||
		!strings.Contains(err.Error(), "debezium.skipped_operations") {
		t.Errorf("bad skipped_operations: %v", err)
	}
}

// With provide_transaction_metadata the envelope carries the transaction
// block of Debezium's example: id "<txId>:<commit LSN>", total_order and
// data_collection_order, as numbers (the example quotes them, which
// Debezium's Int64 schema fields never are).
func TestDebeziumTransactionBlock(t *testing.T) {
	theirs := debeziumDoc(t, "postgresql-transaction.json")["transaction"].(map[string]any)
	e := pgCustomerEvent(Insert, `{"pk":"2","aa":"1"}`, "571", 1, "0/32BB438")
	e.Source.Commit = "0/32BB438" // 53195832, the example's
	e.Metadata.Set(MetaCollectionOrder, json.RawMessage("1"))
	opts := DefaultDebeziumOptions()
	if m := encodeDebeziumMap(t, fixedDebezium(t, opts, time.Unix(1, 0)), e); m["transaction"] != nil {
		t.Errorf("transaction block without provide_transaction_metadata: %v", m["transaction"])
	}
	opts.ProvideTransactionMetadata = true
	ours := encodeDebeziumMap(t, fixedDebezium(t, opts, time.Unix(1, 0)), e)["transaction"].(map[string]any)
	if ours["id"] != theirs["id"] {
		t.Errorf("transaction id %v, Debezium's %v", ours["id"], theirs["id"])
	}
	for _, k := range []string{"total_order", "data_collection_order"} {
		if fmt.Sprint(ours[k]) != theirs[k] {
			t.Errorf("%s %v, Debezium's %v", k, ours[k], theirs[k])
		}
	}
}
