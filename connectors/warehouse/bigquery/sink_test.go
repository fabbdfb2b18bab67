package bigquery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	bqv2 "google.golang.org/api/bigquery/v2"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/spec"
)

// memState is a connector.State in memory: what the engine's state
// store keeps across restarts of the sink.
type memState struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (m *memState) Get(_ context.Context, k string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m[k], nil
}

func (m *memState) Put(_ context.Context, k string, v []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string][]byte{}
	}
	m.m[k] = append([]byte(nil), v...)
	return nil
}

func newSink(t testing.TB, y string, st connector.State) *Sink {
	t.Helper()
	cfg, ps := spec.DecodeString[Config](y, "config")
	if len(ps) > 0 {
		t.Fatalf("config: %v", spec.Problems(ps))
	}
	ctx := context.Background()
	if st != nil {
		ctx = connector.WithRuntime(ctx, &connector.Runtime{State: st})
	}
	s, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func ev(tp events.Type, data string) *events.Event {
	return events.New(tp, "t", events.RawPayload([]byte(data)))
}

// delivered is an event as a trigger delivered it from a log.
func delivered(offset int64, data string) *events.Event {
	e := ev(events.Insert, data)
	e.Delivered = &events.Position{Topic: "cdc.orders", Partition: 0, Offset: offset, HasOffset: true}
	return e
}

const allTypes = `[
 {"name":"id","type":"INTEGER","mode":"REQUIRED"},
 {"name":"s","type":"STRING"},{"name":"i","type":"INT64"},{"name":"f","type":"FLOAT"},{"name":"b","type":"BOOLEAN"},
 {"name":"by","type":"BYTES"},{"name":"ts","type":"TIMESTAMP"},{"name":"d","type":"DATE"},{"name":"dt","type":"DATETIME"},
 {"name":"tm","type":"TIME"},{"name":"n","type":"NUMERIC"},{"name":"bn","type":"BIGNUMERIC"},{"name":"g","type":"GEOGRAPHY"},
 {"name":"j","type":"JSON"},{"name":"tags","type":"STRING","mode":"REPEATED"},
 {"name":"addr","type":"RECORD","fields":[{"name":"city","type":"STRING"},{"name":"zip","type":"INTEGER","mode":"REQUIRED"}]},
 {"name":"lines","type":"RECORD","mode":"REPEATED","fields":[{"name":"sku","type":"STRING"},{"name":"qty","type":"INTEGER"}]}
]`

// TestEveryTypeAndDeadLetters writes rows of every BigQuery type and bad
// rows among them: each bad row is reported with its column and reason,
// the good rows arrive (as the fake decodes them with the descriptor the
// client sent) with exactly the values sent.
func TestEveryTypeAndDeadLetters(t *testing.T) {
	for _, delivery := range []string{"at_least_once", "exactly_once"} {
		t.Run(delivery, func(t *testing.T) {
			f := newFake(t)
			f.addTable("orders", allTypes)
			s := newSink(t, f.config("orders", "delivery: "+delivery+"\n"), &memState{})
			if err := s.Check(context.Background()); err != nil {
				t.Fatal(err)
			}
			good := `{"id":1,"s":"ünï","i":-9223372036854775808,"f":0.1,"b":true,"by":"AAEC/w==","ts":"2024-02-29T23:59:59.123456+01:00",
				"d":"2024-02-29","dt":"2024-02-29 23:59:59.5","tm":"13:14:15.000001","n":"-12345678901234567890123456789.123456789",
				"bn":"-0.00000000000000000000000000000000000001","g":"POINT(1 2)","j":{"k":[1,2]},"tags":["a","b"],
				"addr":{"city":"Graz","zip":8010},"lines":[{"sku":"x","qty":2},{"sku":"y"}]}`
			batch := []*events.Event{
				0:  ev(events.Insert, good),
				1:  ev(events.Insert, `{"id":2,"i":1.5}`),
				2:  ev(events.Insert, `{"id":3,"ts":"yesterday"}`),
				3:  ev(events.Insert, `{"s":"no id"}`),
				4:  ev(events.Insert, `{"id":5,"n":"1.0000000001"}`),
				5:  ev(events.Insert, `{"id":6,"addr":{"city":"Wien"}}`),
				6:  ev(events.Insert, `{"id":7,"tags":"a"}`),
				7:  ev(events.Insert, `{"id":8,"by":"%%%"}`),
				8:  ev(events.Insert, `{"id":9,"d":"2024-02-30"}`),
				9:  ev(events.Insert, `{"id":10,"n":123,"bn":"5","i":"42","f":"NaN","b":"false","ts":1700000000000000}`),
				10: ev(events.Update, `{"before":{"id":11},"after":{"id":11,"s":null}}`),
				11: ev(events.Delete, `{"id":1}`),
				12: ev(events.Insert, `{"id":13,"lines":[{"sku":"z","qty":"many"}]}`),
			}
			err := s.Write(context.Background(), batch)
			var we *connector.WriteError
			if !errors.As(err, &we) {
				t.Fatalf("Write: %v, want a WriteError", err)
			}
			want := map[int]string{
				1:  "column i (INT64): 1.5 is not an INT64",
				2:  `column ts (TIMESTAMP): "yesterday" is not a timestamp`,
				3:  "column id (INT64): required, the row has no value",
				4:  "column n (NUMERIC): 1.0000000001 has more than 9 digits after the point",
				5:  "column addr.zip (INT64): required, the row has no value",
				6:  "column tags (REPEATED STRING): want an array, got a string",
				7:  "column by (BYTES): not base64",
				8:  `column d (DATE): "2024-02-30" is not a date`,
				12: `column lines[0].qty (INT64): "many" is not an integer`,
			}
			var got []int
			for i, e := range we.Failed {
				got = append(got, i)
				if !strings.Contains(e.Error(), want[i]) {
					t.Errorf("event %d: %v, want %s", i, e, want[i])
				}
			}
			sort.Ints(got)
			if wantIdx := []int{1, 2, 3, 4, 5, 6, 7, 8, 12}; !reflect.DeepEqual(got, wantIdx) {
				t.Errorf("failed %v, want %v", got, wantIdx)
			}
			rows := f.rows("orders")
			wantRows := []string{
				`{"addr":{"city":"Graz","zip":8010},"b":true,"bn":"-0.00000000000000000000000000000000000001","by":"AAEC/w==","d":"2024-02-29","dt":"2024-02-29T23:59:59.500000","f":0.1,"g":"POINT(1 2)","i":-9223372036854775808,"id":1,"j":"{\"k\":[1,2]}","lines":[{"qty":2,"sku":"x"},{"sku":"y"}],"n":"-12345678901234567890123456789.123456789","s":"ünï","tags":["a","b"],"tm":"13:14:15.000001","ts":"2024-02-29T22:59:59.123456Z"}`,
				`{"b":false,"bn":"5","f":"NaN","i":42,"id":10,"n":"123","ts":"2023-11-14T22:13:20Z"}`,
				`{"id":11}`,
			}
			if len(rows) != len(wantRows) {
				t.Fatalf("%d rows, want %d: %v", len(rows), len(wantRows), rows)
			}
			for i, r := range rows {
				if g := canon(t, r); g != wantRows[i] {
					t.Errorf("row %d:\n got %s\nwant %s", i, g, wantRows[i])
				}
			}
		})
	}
}

// canon is a decoded row as JSON with NaN spelled out.
func canon(t *testing.T, r map[string]any) string {
	t.Helper()
	for k, v := range r {
		if x, ok := v.(float64); ok && x != x {
			r[k] = "NaN"
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func ids(rows []map[string]any) []int64 {
	var out []int64
	for _, r := range rows {
		out = append(out, r["id"].(int64))
	}
	return out
}

func batchOf(from, to int64) []*events.Event {
	var b []*events.Event
	for o := from; o < to; o++ {
		b = append(b, delivered(o, fmt.Sprintf(`{"id":%d,"s":"row %d"}`, o, o)))
	}
	return b
}

const simple = `[{"name":"id","type":"INTEGER","mode":"REQUIRED"},{"name":"s","type":"STRING"}]`

func seq(from, to int64) []int64 {
	var out []int64
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// TestExactlyOnceRedeliveryAfterRestart: a batch written by one sink
// instance and redelivered to the next (the process died before the
// trigger was acknowledged) is not written again, also when the
// redelivery groups the records differently.
func TestExactlyOnceRedeliveryAfterRestart(t *testing.T) {
	f := newFake(t)
	f.addTable("t", simple)
	st := &memState{}
	cfg := f.config("t", "delivery: exactly_once\n")
	s1 := newSink(t, cfg, st)
	if err := s1.Write(context.Background(), batchOf(0, 10)); err != nil {
		t.Fatal(err)
	}
	s1.Close(context.Background())

	s2 := newSink(t, cfg, st)
	if err := s2.Write(context.Background(), batchOf(0, 10)); err != nil {
		t.Fatal(err)
	}
	if err := s2.Write(context.Background(), batchOf(5, 15)); err != nil {
		t.Fatal(err)
	}
	if got := ids(f.rows("t")); !reflect.DeepEqual(got, seq(0, 15)) {
		t.Errorf("rows %v, want 0..14 once each", got)
	}
	if n := s2.dups.Value(); n != 15 {
		t.Errorf("duplicates counted %d, want 15", n)
	}
	// One committed stream, offsets contiguous.
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.streams) != 1 {
		t.Errorf("%d streams, want 1", len(f.streams))
	}
	for _, s := range f.streams {
		if s.length != 15 {
			t.Errorf("stream length %d, want 15", s.length)
		}
	}
}

// TestExactlyOnceLostAcknowledgement: the service wrote the rows but the
// connection broke before its answer; the client's retry of the same
// offset is refused with ALREADY_EXISTS, which the sink takes as written.
func TestExactlyOnceLostAcknowledgement(t *testing.T) {
	f := newFake(t)
	f.addTable("t", simple)
	s := newSink(t, f.config("t", "delivery: exactly_once\n"), &memState{})
	if err := s.Write(context.Background(), batchOf(0, 3)); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.loseAcks = 1
	f.mu.Unlock()
	if err := s.Write(context.Background(), batchOf(3, 6)); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), batchOf(6, 8)); err != nil {
		t.Fatal(err)
	}
	if got := ids(f.rows("t")); !reflect.DeepEqual(got, seq(0, 8)) {
		t.Errorf("rows %v, want 0..7 once each", got)
	}
}

// TestAtLeastOnceLostAcknowledgement: on the default stream the same
// lost answer makes the retry write the rows again — the documented
// difference between the two deliveries.
func TestAtLeastOnceLostAcknowledgement(t *testing.T) {
	f := newFake(t)
	f.addTable("t", simple)
	s := newSink(t, f.config("t", ""), nil)
	f.mu.Lock()
	f.loseAcks = 1
	f.mu.Unlock()
	if err := s.Write(context.Background(), batchOf(0, 3)); err != nil {
		t.Fatal(err)
	}
	if got := ids(f.rows("t")); !reflect.DeepEqual(got, []int64{0, 1, 2, 0, 1, 2}) {
		t.Errorf("rows %v, want 0..2 twice (at least once)", got)
	}
}

// TestExactlyOnceFailedAppendThenRestart: every attempt of an append
// failed (nothing written); after a restart the recorded batch is
// appended at its offset first, then the redelivery finds its records
// written and appends only the new ones.
func TestExactlyOnceFailedAppendThenRestart(t *testing.T) {
	f := newFake(t)
	f.addTable("t", simple)
	st := &memState{}
	cfg := f.config("t", "delivery: exactly_once\n")
	s1 := newSink(t, cfg, st)
	if err := s1.Write(context.Background(), batchOf(0, 4)); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.refuse = 1000
	f.mu.Unlock()
	if err := s1.Write(context.Background(), batchOf(4, 8)); err == nil {
		t.Fatal("Write succeeded against a service refusing every append")
	}
	s1.Close(context.Background())
	f.mu.Lock()
	f.refuse = 0
	f.mu.Unlock()

	s2 := newSink(t, cfg, st)
	if err := s2.Write(context.Background(), batchOf(4, 12)); err != nil {
		t.Fatal(err)
	}
	if got := ids(f.rows("t")); !reflect.DeepEqual(got, seq(0, 12)) {
		t.Errorf("rows %v, want 0..11 once each", got)
	}
}

// TestExactlyOnceInProcessRetry: the engine retries a failed Write with
// the same batch; the first retry finds the batch written by the
// resolution and appends nothing twice.
func TestExactlyOnceInProcessRetry(t *testing.T) {
	f := newFake(t)
	f.addTable("t", simple)
	s := newSink(t, f.config("t", "delivery: exactly_once\nretry: {max_retries: 0, initial_backoff_ms: 1, max_backoff_ms: 1}\n"), &memState{})
	f.mu.Lock()
	f.loseAcks = 1 // written, answer lost; no retry inside the sink
	f.mu.Unlock()
	b := batchOf(0, 5)
	_ = s.Write(context.Background(), b) // may fail or succeed depending on the client's own retry
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if got := ids(f.rows("t")); !reflect.DeepEqual(got, seq(0, 5)) {
		t.Errorf("rows %v, want 0..4 once each", got)
	}
}

// TestExactlyOnceStreamGone: the committed stream was garbage-collected
// between runs; the sink opens a new one and appends the recorded batch
// there (it may then be twice in the table: logged).
func TestExactlyOnceStreamGone(t *testing.T) {
	f := newFake(t)
	f.addTable("t", simple)
	st := &memState{}
	cfg := f.config("t", "delivery: exactly_once\n")
	s1 := newSink(t, cfg, st)
	if err := s1.Write(context.Background(), batchOf(0, 2)); err != nil {
		t.Fatal(err)
	}
	s1.Close(context.Background())
	old := s1.once.rec.Stream
	f.dropStream(old)
	s2 := newSink(t, cfg, st)
	if err := s2.Write(context.Background(), batchOf(2, 4)); err != nil {
		t.Fatal(err)
	}
	if s2.once.rec.Stream == old {
		t.Error("still on the dropped stream")
	}
	if got := ids(f.rows("t")); !reflect.DeepEqual(got, []int64{0, 1, 0, 1, 2, 3}) {
		t.Errorf("rows %v, want 0,1 (first stream), 0,1 again and 2,3 (new stream)", got)
	}
}

// TestExactlyOnceStateAheadOfStream: a state record naming an offset the
// stream never reached (another writer, a restored backup) stops the
// sink instead of guessing.
func TestExactlyOnceStateAheadOfStream(t *testing.T) {
	f := newFake(t)
	f.addTable("t", simple)
	st := &memState{}
	cfg := f.config("t", "delivery: exactly_once\n")
	s1 := newSink(t, cfg, st)
	if err := s1.Write(context.Background(), batchOf(0, 2)); err != nil {
		t.Fatal(err)
	}
	s1.Close(context.Background())
	var rec record
	json.Unmarshal(st.m[s1.stateKey()], &rec)
	rec.Offset = 7
	b, _ := json.Marshal(rec)
	st.m[s1.stateKey()] = b
	s2 := newSink(t, cfg, st)
	err := s2.Write(context.Background(), batchOf(2, 3))
	if !errors.Is(err, connector.ErrFatal) || !strings.Contains(err.Error(), "stream is shorter") {
		t.Fatalf("Write: %v, want a fatal error about the stream", err)
	}
}

// TestServiceRefusedRows: a row the service refuses (row_errors) is
// dead-lettered with the service's reason and the rest of the request
// is sent again; here the table changed under the sink (a column became
// REQUIRED) so the sink's own conversion let the row through.
func TestServiceRefusedRows(t *testing.T) {
	for _, delivery := range []string{"at_least_once", "exactly_once"} {
		t.Run(delivery, func(t *testing.T) {
			f := newFake(t)
			f.addTable("t", simple)
			s := newSink(t, f.config("t", "delivery: "+delivery+"\n"), &memState{})
			if err := s.Check(context.Background()); err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			f.tables["projects/test-project/datasets/ds/tables/t"].meta.Schema.Fields[1].Mode = "REQUIRED"
			f.mu.Unlock()
			err := s.Write(context.Background(), []*events.Event{
				delivered(0, `{"id":1,"s":"a"}`), delivered(1, `{"id":2}`), delivered(2, `{"id":3,"s":"c"}`)})
			var we *connector.WriteError
			if !errors.As(err, &we) || len(we.Failed) != 1 || !strings.Contains(fmt.Sprint(we.Failed[1]), "field s: the REQUIRED column has no value") {
				t.Fatalf("Write: %v, want event 1 refused by the service", err)
			}
			if got := ids(f.rows("t")); !reflect.DeepEqual(got, []int64{1, 3}) {
				t.Errorf("rows %v, want 1, 3", got)
			}
			// The sink read the table again: it now knows s is REQUIRED.
			err = s.Write(context.Background(), []*events.Event{delivered(3, `{"id":4}`), delivered(4, `{"id":5,"s":"e"}`)})
			if !errors.As(err, &we) || len(we.Failed) != 1 || !strings.Contains(fmt.Sprint(we.Failed[0]), "column s (STRING): required") {
				t.Fatalf("Write after the change: %v, want event 0 failed by the sink's own check", err)
			}
			if got := ids(f.rows("t")); !reflect.DeepEqual(got, []int64{1, 3, 5}) {
				t.Errorf("rows %v, want 1, 3, 5", got)
			}
		})
	}
}

// TestCreateTable: with create_table the missing table is created from
// the first batch's fields (and the operation column), then written.
func TestCreateTable(t *testing.T) {
	f := newFake(t)
	s := newSink(t, f.config("fresh", "create_table: true\noperation_column: _op\ndeletes: write\n"), nil)
	if err := s.Check(context.Background()); err != nil {
		t.Fatalf("Check with create_table on a missing table: %v", err)
	}
	err := s.Write(context.Background(), []*events.Event{
		ev(events.Insert, `{"id":1,"name":"a","price":2,"ok":true,"tags":["x"],"meta":{"k":1},"gone":null}`),
		ev(events.Insert, `{"id":2,"name":"b","price":2.5}`),
		ev(events.Delete, `{"id":1,"name":"a"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	var cols []string
	for _, c := range f.tables["projects/test-project/datasets/ds/tables/fresh"].meta.Schema.Fields {
		cols = append(cols, c.Name+" "+c.Type)
	}
	f.mu.Unlock()
	if want := []string{"_op STRING", "id INTEGER", "meta JSON", "name STRING", "ok BOOLEAN", "price FLOAT", "tags JSON"}; !reflect.DeepEqual(cols, want) {
		t.Errorf("columns %v, want %v", cols, want)
	}
	var got []string
	for _, r := range f.rows("fresh") {
		got = append(got, canon(t, r))
	}
	want := []string{
		`{"_op":"insert","id":1,"meta":"{\"k\":1}","name":"a","ok":true,"price":2,"tags":"[\"x\"]"}`,
		`{"_op":"insert","id":2,"name":"b","price":2.5}`,
		`{"_op":"delete","id":1,"name":"a"}`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rows\n got %v\nwant %v", got, want)
	}
}

// TestCheck: the table must exist (unless create_table), the operation
// column must be a STRING column of it.
func TestCheck(t *testing.T) {
	f := newFake(t)
	f.addTable("t", simple)
	if err := newSink(t, f.config("missing", ""), nil).Check(context.Background()); err == nil || !strings.Contains(err.Error(), "ds.missing does not exist") {
		t.Errorf("Check of a missing table: %v", err)
	}
	if err := newSink(t, f.config("t", "operation_column: op\n"), nil).Check(context.Background()); err == nil || !strings.Contains(err.Error(), "operation_column: table ds.t has no STRING column op") {
		t.Errorf("Check without the operation column: %v", err)
	}
	if err := newSink(t, f.config("t", ""), nil).Check(context.Background()); err != nil {
		t.Errorf("Check: %v", err)
	}
}

// TestConfigProblems: errors name the YAML path and never quote a secret.
func TestConfigProblems(t *testing.T) {
	cases := []struct{ yaml, path string }{
		{"project_id: X\ndataset: d\ntable: t\n", "config.project_id"},
		{"project_id: my-project\ndataset: d-x\ntable: t\n", "config.dataset"},
		{"project_id: my-project\ndataset: d\ntable: t\ndelivery: twice\n", "config.delivery"},
		{"project_id: my-project\ndataset: d\ntable: t\noperation_column: 1op\n", "config.operation_column"},
		{"project_id: my-project\ndataset: d\ntable: t\nretry: {initial_backoff_ms: 10, max_backoff_ms: 5}\n", "config.retry.max_backoff_ms"},
		{"project_id: my-project\ndataset: d\ntable: t\ncredentials_json: 'hunter2-not-json'\n", "config.credentials_json"},
		{"project_id: my-project\ndataset: d\ntable: t\napi_endpoint: localhost\n", "config.api_endpoint"},
	}
	for _, c := range cases {
		_, ps := spec.DecodeString[Config](c.yaml, "config")
		found := false
		for _, p := range ps {
			found = found || p.Path == c.path
			if strings.Contains(p.Message, "hunter2") {
				t.Errorf("%s: the message quotes the secret: %s", c.path, p.Message)
			}
		}
		if !found {
			t.Errorf("%q: problems %v, want one at %s", c.yaml, ps, c.path)
		}
	}
}

// TestTableGainsColumn: a column added to the table while the sink runs
// reaches the sink through the service's updated_schema; from the next
// batch on the sink writes it (the batch in flight is in the old schema,
// as with the service).
func TestTableGainsColumn(t *testing.T) {
	for _, delivery := range []string{"at_least_once", "exactly_once"} {
		t.Run(delivery, func(t *testing.T) {
			f := newFake(t)
			f.addTable("t", simple)
			s := newSink(t, f.config("t", "delivery: "+delivery+"\n"), &memState{})
			if err := s.Write(context.Background(), []*events.Event{delivered(0, `{"id":1,"note":"x"}`)}); err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			tb := f.tables["projects/test-project/datasets/ds/tables/t"]
			tb.meta.Schema.Fields = append(tb.meta.Schema.Fields, &bqv2.TableFieldSchema{Name: "note", Type: "STRING"})
			f.mu.Unlock()
			for i, id := range []int{2, 3} {
				if err := s.Write(context.Background(), []*events.Event{delivered(int64(i+1), fmt.Sprintf(`{"id":%d,"note":"n%d"}`, id, id))}); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for _, r := range f.rows("t") {
				got = append(got, canon(t, r))
			}
			want := []string{`{"id":1}`, `{"id":2}`, `{"id":3,"note":"n3"}`}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("rows %v, want %v", got, want)
			}
		})
	}
}

// TestLargeBatchInChunks: a batch over the request limit goes in several
// appends at consecutive offsets, in order; an answer lost in the middle
// is recovered by the offsets, and a restart with the whole batch
// redelivered writes nothing twice.
func TestLargeBatchInChunks(t *testing.T) {
	defer func(n int) { maxRequestBytes = n }(maxRequestBytes)
	maxRequestBytes = 200 // a row here is ~12 bytes + 8 of overhead: about 10 rows per append
	f := newFake(t)
	f.addTable("t", simple)
	st := &memState{}
	cfg := f.config("t", "delivery: exactly_once\n")
	s1 := newSink(t, cfg, st)
	f.mu.Lock()
	f.loseAcks = 1
	f.mu.Unlock()
	if err := s1.Write(context.Background(), batchOf(0, 95)); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	appends := f.appends
	f.mu.Unlock()
	if appends < 10 {
		t.Errorf("%d append requests for 95 rows at ~10 per request", appends)
	}
	s1.Close(context.Background())
	s2 := newSink(t, cfg, st)
	if err := s2.Write(context.Background(), batchOf(0, 100)); err != nil {
		t.Fatal(err)
	}
	if got := ids(f.rows("t")); !reflect.DeepEqual(got, seq(0, 100)) {
		t.Errorf("rows %v, want 0..99 once each, in order", got)
	}
}

// TestCircuitBreaker: after failure_threshold failed batches the circuit
// opens and a batch fails at once without an append; after
// reset_timeout_secs probes go through and success_threshold good ones
// close it. Rows dead-lettered for their data do not count as failures.
func TestCircuitBreaker(t *testing.T) {
	cfg, ps := spec.DecodeString[Config]("project_id: my-project\ndataset: d\ntable: t\n", "config")
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	if want := (resilience.CircuitConfig{Enabled: true, FailureThreshold: 5, ResetTimeoutSecs: 30, SuccessThreshold: 2}); cfg.CircuitBreaker != want {
		t.Errorf("circuit_breaker defaults %+v, want the reference's %+v", cfg.CircuitBreaker, want)
	}

	f := newFake(t)
	f.addTable("t", simple)
	s := newSink(t, f.config("t", "retry: {max_retries: 0, initial_backoff_ms: 1, max_backoff_ms: 1}\ncircuit_breaker: {failure_threshold: 2, reset_timeout_secs: 30}\n"), nil)
	now := time.Now()
	s.br.Now = func() time.Time { return now }
	ctx := context.Background()

	// A row that does not convert is the data's fault: the batch counts as
	// a success, however often it happens.
	for i := 0; i < 3; i++ {
		err := s.Write(ctx, []*events.Event{delivered(int64(i), `{"id":"not a number"}`)})
		var we *connector.WriteError
		if !errors.As(err, &we) {
			t.Fatalf("bad row: %v, want a WriteError", err)
		}
	}
	if s.br.State() != resilience.Closed {
		t.Fatalf("breaker %v after dead-lettered rows", s.br.State())
	}

	f.mu.Lock()
	f.refuse = 1000
	f.mu.Unlock()
	for i := 0; i < 2; i++ {
		if err := s.Write(ctx, batchOf(0, 2)); err == nil || errors.Is(err, resilience.ErrOpen) {
			t.Fatalf("write %d against a refusing service: %v", i, err)
		}
	}
	f.mu.Lock()
	before := f.appends
	f.mu.Unlock()
	err := s.Write(ctx, batchOf(0, 2))
	if !errors.Is(err, resilience.ErrOpen) || resilience.ClassOf(err) != resilience.Connection {
		t.Fatalf("third write: %v, want the open circuit", err)
	}
	f.mu.Lock()
	after := f.appends
	f.refuse = 0
	f.mu.Unlock()
	if after != before || s.rejected.Value() != 1 {
		t.Errorf("the open circuit let %d appends through, rejected %d", after-before, s.rejected.Value())
	}
	// Still open before reset_timeout_secs.
	now = now.Add(29 * time.Second)
	if err := s.Write(ctx, batchOf(0, 2)); !errors.Is(err, resilience.ErrOpen) {
		t.Fatalf("write before the reset timeout: %v", err)
	}
	now = now.Add(2 * time.Second)
	for i := 0; i < 2; i++ {
		if err := s.Write(ctx, batchOf(int64(10+i), int64(11+i))); err != nil {
			t.Fatalf("probe %d: %v", i, err)
		}
	}
	if s.br.State() != resilience.Closed {
		t.Errorf("breaker %v after two good probes", s.br.State())
	}
	if got := ids(f.rows("t")); !reflect.DeepEqual(got, []int64{10, 11}) {
		t.Errorf("rows %v, want the probes' 10 and 11", got)
	}

	// enabled: false never rejects.
	off := newSink(t, f.config("t", "retry: {max_retries: 0, initial_backoff_ms: 1, max_backoff_ms: 1}\ncircuit_breaker: {enabled: false, failure_threshold: 1}\n"), nil)
	f.mu.Lock()
	f.refuse = 1000
	f.mu.Unlock()
	for i := 0; i < 3; i++ {
		if err := off.Write(ctx, batchOf(0, 1)); err == nil || errors.Is(err, resilience.ErrOpen) {
			t.Fatalf("disabled breaker, write %d: %v", i, err)
		}
	}
}
