package databricks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/spec"
)

const table = "main.sales.orders"

func ev(tp events.Type, data string) *events.Event {
	return events.New(tp, "orders", events.RawPayload([]byte(data)))
}

func newSink(t testing.TB, f *fakeDatabricks, y string) *Sink {
	t.Helper()
	cfg, ps := spec.DecodeString[Config](y, "config")
	if len(ps) > 0 {
		t.Fatalf("config: %v", spec.Problems(ps))
	}
	s, err := New(context.Background(), cfg, f.options()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// ordersTable has a column of every primitive type, one NOT NULL.
func ordersTable(f *fakeDatabricks, complexCols bool) {
	cols := []ucColumn{
		col("id", "LONG", "bigint", false),
		col("customer", "STRING", "string", true),
		col("amount", "DECIMAL", "decimal(10,2)", true),
		col("qty", "INT", "int", true),
		col("small", "SHORT", "smallint", true),
		col("tiny", "BYTE", "tinyint", true),
		col("price", "DOUBLE", "double", true),
		col("ratio", "FLOAT", "float", true),
		col("paid", "BOOLEAN", "boolean", true),
		col("created", "TIMESTAMP", "timestamp", true),
		col("day", "DATE", "date", true),
		col("blob", "BINARY", "binary", true),
	}
	if complexCols {
		cols = append(cols, col("tags", "ARRAY", "array<string>", true))
	}
	f.addTable(table, cols...)
}

func norm(row map[string]any) string {
	var b strings.Builder
	for _, k := range []string{"id", "customer", "amount", "qty", "small", "tiny", "price", "ratio", "paid", "created", "day", "blob", "tags"} {
		if v, ok := row[k]; ok {
			fmt.Fprintf(&b, "%s=%v ", k, v)
		}
	}
	return strings.TrimSpace(b.String())
}

const goodRow = `{"id":1,"customer":"ada \"lovelace\" ü","amount":"12.50","qty":3,"small":-32768,"tiny":127,"price":1.5e3,"ratio":0.25,"paid":true,"created":"2024-05-01T12:00:00.123456Z","day":"2024-05-01","blob":"AAEC","extra":"not a column"}`

// The rows the table holds after the good row and its variants, as the
// service decoded them (timestamps in microseconds, dates in days,
// decimals as text).
const goodRowWant = `id=1 customer=ada "lovelace" ü amount=12.50 qty=3 small=-32768 tiny=127 price=1500 ratio=0.25 paid=true created=1714564800123456 day=19844 blob=AAEC`

func TestWriteJSONRowsAndDeadLetterBadOnes(t *testing.T) {
	f := newFakeDatabricks(t)
	ordersTable(f, true)
	s := newSink(t, f, f.config(table, ""))
	batch := []*events.Event{
		ev(events.Insert, goodRow),
		ev(events.Insert, `{"id":"abc"}`),
		ev(events.Insert, `{"id":2,"amount":1.234}`),
		ev(events.Insert, `{"customer":"no id"}`),
		ev(events.Insert, `{"id":3,"tiny":128}`),
		ev(events.Insert, `{"id":4,"created":"yesterday"}`),
		ev(events.Update, `{"before":{"id":5},"after":{"id":5,"tags":["a","b"],"qty":null}}`),
		ev(events.Delete, `{"id":6}`),
		ev(events.Insert, `{"id":7,"tags":"not an array"}`),
		ev(events.SnapshotRead, `{"id":8,"created":1714564800000000,"day":19844,"amount":99999999.99}`),
		ev(events.Insert, `{"id":9,"amount":100000000}`),
	}
	err := s.Write(context.Background(), batch)
	var we *connector.WriteError
	if !errors.As(err, &we) {
		t.Fatalf("Write = %v, want a WriteError for the bad rows", err)
	}
	want := map[int]string{
		1:  `column id (bigint): "abc" is not an integer`,
		2:  `column amount (decimal(10,2)): 1.234 has more than 2 decimals (decimal(10,2))`,
		3:  `column id (bigint): missing, and the column is NOT NULL`,
		4:  `column tiny (tinyint): 128 overflows TINYINT`,
		5:  `column created (timestamp): "yesterday" is not an RFC 3339 timestamp`,
		8:  `column tags (array<string>): "not an array" is not an array`,
		10: `column amount (decimal(10,2)): 100000000 has more than 10 digits (decimal(10,2))`,
	}
	if len(we.Failed) != len(want) {
		t.Errorf("failed %v, want %d rows", we.Failed, len(want))
	}
	for i, msg := range want {
		if got := we.Failed[i]; got == nil || got.Error() != msg {
			t.Errorf("row %d: %v, want %q", i, got, msg)
		}
	}
	got := f.tableRows(table)
	wantRows := []string{goodRowWant, "id=5 tags=[a b]", "id=8 amount=99999999.99 created=1714564800000000 day=19844"}
	if len(got) != len(wantRows) {
		t.Fatalf("table has %d rows, want %d: %v", len(got), len(wantRows), got)
	}
	for i := range wantRows {
		if n := norm(got[i]); n != wantRows[i] {
			t.Errorf("row %d:\n got %s\nwant %s", i, n, wantRows[i])
		}
	}
	if s.m.written.Value() != 3 || s.m.failed.Value() != 7 || s.m.serial.Value() != 7 || s.m.okB.Value() != 1 || s.m.acksOK.Value() != 1 {
		t.Errorf("metrics: written %d failed %d serialization %d batches %d acks %d", s.m.written.Value(), s.m.failed.Value(), s.m.serial.Value(), s.m.okB.Value(), s.m.acksOK.Value())
	}
	if s.m.bytes.Value() == 0 || s.m.size.Value() != 3 {
		t.Errorf("bytes %d, batch size %v", s.m.bytes.Value(), s.m.size.Value())
	}
}

func TestWriteProtoRecords(t *testing.T) {
	f := newFakeDatabricks(t)
	ordersTable(f, false)
	s := newSink(t, f, f.config(table, "record_type: proto\n"))
	batch := []*events.Event{ev(events.Insert, goodRow), ev(events.Insert, `{"id":2,"qty":-5,"paid":false,"ratio":"NaN"}`), ev(events.Insert, `{"qty":1}`)}
	err := s.Write(context.Background(), batch)
	var we *connector.WriteError
	if !errors.As(err, &we) || len(we.Failed) != 1 || we.Failed[2] == nil {
		t.Fatalf("Write = %v, want row 2 dead-lettered", err)
	}
	got := f.tableRows(table)
	// protojson (the reader) writes int64 as strings and float NaN as
	// "NaN"; %v prints them as the numbers they are.
	want := []string{goodRowWant, "id=2 qty=-5 ratio=NaN paid=false"}
	if len(got) != 2 {
		t.Fatalf("rows %v", got)
	}
	for i := range want {
		if n := norm(got[i]); n != want[i] {
			t.Errorf("row %d:\n got %s\nwant %s", i, n, want[i])
		}
	}
}

func TestProtoRejectsComplexColumns(t *testing.T) {
	f := newFakeDatabricks(t)
	ordersTable(f, true)
	s := newSink(t, f, f.config(table, "record_type: proto\n"))
	err := s.Write(context.Background(), []*events.Event{ev(events.Insert, `{"id":1}`)})
	if err == nil || !strings.Contains(err.Error(), "column tags (array<string>): record_type proto supports primitive columns only") {
		t.Fatalf("Write = %v", err)
	}
	if c := resilience.ClassOf(err); c != resilience.Fatal {
		t.Errorf("class %v, want fatal", c)
	}
}

func TestCheck(t *testing.T) {
	f := newFakeDatabricks(t)
	ordersTable(f, false)
	if err := newSink(t, f, f.config(table, "")).Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := newSink(t, f, f.config("main.sales.missing", "")).Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "TABLE_DOES_NOT_EXIST") || resilience.ClassOf(err) != resilience.Fatal {
		t.Errorf("missing table: %v (class %v)", err, resilience.ClassOf(err))
	}
	bad := strings.Replace(f.config(table, ""), f.clientSecret, "wrong-secret", 1)
	err = newSink(t, f, bad).Check(context.Background())
	if err == nil || resilience.ClassOf(err) != resilience.Auth || !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("wrong secret: %v (class %v)", err, resilience.ClassOf(err))
	}
	if strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("the error shows the secret: %v", err)
	}
}

func TestWrongSecretIsAuthAndNotRetried(t *testing.T) {
	f := newFakeDatabricks(t)
	ordersTable(f, false)
	s := newSink(t, f, strings.Replace(f.config(table, ""), f.clientSecret, "wrong-secret", 1))
	err := s.Write(context.Background(), []*events.Event{ev(events.Insert, `{"id":1}`)})
	if resilience.ClassOf(err) != resilience.Auth || s.m.retried.Value() != 0 || s.m.badB.Value() != 1 {
		t.Fatalf("Write = %v (class %v), retried %d", err, resilience.ClassOf(err), s.m.retried.Value())
	}
}

// A token Zerobus no longer accepts is dropped and a new one minted.
func TestRevokedTokenIsReplaced(t *testing.T) {
	f := newFakeDatabricks(t)
	ordersTable(f, false)
	s := newSink(t, f, f.config(table, "initial_backoff_ms: 1\nmax_backoff_ms: 1\n"))
	if err := s.Write(context.Background(), []*events.Event{ev(events.Insert, `{"id":1}`)}); err != nil {
		t.Fatal(err)
	}
	f.revokeTokens()
	f.mu.Lock()
	f.failStream = func(stream, batch int) bool { return stream == 1 && batch == 2 } // so a new stream is opened
	f.mu.Unlock()
	if err := s.Write(context.Background(), []*events.Event{ev(events.Insert, `{"id":2}`)}); err != nil {
		t.Fatal(err)
	}
	// Streams: the first, one refused for the revoked token, one with a
	// new token (three tokens: workspace API, ingest, new ingest).
	if got := len(f.tableRows(table)); got != 2 || f.streams != 3 || f.minted != 3 || s.m.recoveries.Value() != 1 {
		t.Errorf("%d rows, want 2; %d streams, %d tokens, %d recoveries", got, f.streams, f.minted, s.m.recoveries.Value())
	}
}

func TestEndpointFormats(t *testing.T) {
	for _, c := range []struct {
		endpoint, uc string
		cloud        Cloud
		err          string
	}{
		{"1234567890123456.zerobus.us-west-2.cloud.databricks.com", "https://dbc-a1b2c3d4-e5f6.cloud.databricks.com", AWS, ""},
		{"https://1234567890123456.zerobus.eastus2.azuredatabricks.net", "https://adb-1234567890123456.7.azuredatabricks.net/", Azure, ""},
		{"1234567890123456.zerobus.us-central1.gcp.databricks.com:443", "https://1234567890123456.7.gcp.databricks.com", GCP, ""},
		{"zerobus.us-west-2.cloud.databricks.com", "https://x.cloud.databricks.com", "", "endpoint"},
		{"123.zerobus.us-west-2.example.com", "https://x.cloud.databricks.com", "", "endpoint"},
		{"http://123.zerobus.us-west-2.cloud.databricks.com", "https://x.cloud.databricks.com", "", "endpoint"},
		{"123.zerobus.us-west-2.cloud.databricks.com/path", "https://x.cloud.databricks.com", "", "endpoint"},
		{"123.zerobus.us-west-2.cloud.databricks.com", "http://x.cloud.databricks.com", "", "unity_catalog_url"},
		{"123.zerobus.us-west-2.cloud.databricks.com", "https://x.azuredatabricks.net", "", "unity_catalog_url"},
		{"http://127.0.0.1:5000", "http://127.0.0.1:5001", Local, ""},
	} {
		y := fmt.Sprintf("endpoint: %q\nunity_catalog_url: %q\ntable_name: a.b.c\nclient_id: x\nclient_secret: y\n", c.endpoint, c.uc)
		_, ps := spec.DecodeString[Config](y, "config")
		if c.err == "" {
			if len(ps) > 0 {
				t.Errorf("%s: %v", c.endpoint, spec.Problems(ps))
			}
			if ep, err := parseEndpoint(c.endpoint); err != nil || ep.cloud != c.cloud {
				t.Errorf("%s: cloud %v, %v; want %v", c.endpoint, ep.cloud, err, c.cloud)
			}
			continue
		}
		if len(ps) != 1 || ps[0].Path != "config."+c.err {
			t.Errorf("%s / %s: problems %v, want one at %s", c.endpoint, c.uc, ps, c.err)
		}
	}
	_, ps := spec.DecodeString[Config]("endpoint: 1.zerobus.r.cloud.databricks.com\nunity_catalog_url: https://x.cloud.databricks.com\ntable_name: a.b\nclient_id: x\nclient_secret: y\nbatch_size: 0\n", "config")
	if got := fmt.Sprint(spec.Problems(ps)); !strings.Contains(got, "config.table_name") || !strings.Contains(got, "config.batch_size") {
		t.Errorf("problems %s", got)
	}
}

// The sink's defaults are the reference's.
func TestReferenceDefaults(t *testing.T) {
	cfg, ps := spec.DecodeString[Config]("endpoint: 1.zerobus.r.cloud.databricks.com\nunity_catalog_url: https://x.cloud.databricks.com\ntable_name: a.b.c\nclient_id: x\nclient_secret: y\n", "config")
	if len(ps) > 0 {
		t.Fatal(spec.Problems(ps))
	}
	got := fmt.Sprint(cfg.BatchSize, cfg.FlushIntervalSecs, cfg.MaxInflightRequests, cfg.WaitForAck, cfg.Recovery, cfg.RecoveryRetries,
		cfg.RecoveryTimeoutMs, cfg.RecoveryBackoffMs, cfg.ServerAckTimeoutMs, cfg.FlushTimeoutMs, cfg.MaxBatchRetries,
		cfg.InitialBackoffMs, cfg.MaxBackoffMs, cfg.CircuitBreaker)
	if want := "500 5 100000 true true 4 15000 2000 60000 300000 2 200 5000 {true 5 30 2}"; got != want {
		t.Errorf("defaults %s, want %s", got, want)
	}
}

func TestBreakerOpensAfterFailures(t *testing.T) {
	f := newFakeDatabricks(t)
	ordersTable(f, false)
	s := newSink(t, f, f.config(table, "recovery: false\nmax_batch_retries: 0\ncircuit_breaker:\n  failure_threshold: 2\n"))
	f.mu.Lock()
	f.failStream = func(int, int) bool { return true }
	f.mu.Unlock()
	for i := 0; i < 2; i++ {
		if err := s.Write(context.Background(), []*events.Event{ev(events.Insert, `{"id":1}`)}); err == nil {
			t.Fatal("Write succeeded on a failing stream")
		}
	}
	err := s.Write(context.Background(), []*events.Event{ev(events.Insert, `{"id":1}`)})
	if err == nil || !strings.Contains(err.Error(), "circuit breaker open") || s.m.rejected.Value() != 1 {
		t.Fatalf("Write = %v, rejected %d", err, s.m.rejected.Value())
	}
	if s.m.acksErr.Value() != 2 || s.m.badB.Value() != 2 {
		t.Errorf("acks.error %d, batches.failed %d", s.m.acksErr.Value(), s.m.badB.Value())
	}
}

var _ = time.Second
