package clickhouse

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	chcompress "github.com/ClickHouse/ch-go/compress"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

// fakeCH is a protocol fake of ClickHouse's HTTP interface for what
// 18.16 lacks (types added later, insert_deduplication_token): it
// answers version() and DESCRIBE TABLE as a 23.8 server would, reads
// INSERT … FORMAT RowBinary bodies in ClickHouse's compressed block
// format (decompress=1, checked by ch-go's reader, checksums included),
// and deduplicates inserts by their token as the server does.
type fakeCH struct {
	mu       sync.Mutex
	describe string
	auth     []string
	inserts  [][]byte
	tokens   []string
	seen     map[string]bool
}

func (f *fakeCH) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	q := r.URL.Query()
	body, _ := io.ReadAll(r.Body)
	if ins := q.Get("query"); ins != "" {
		if !strings.HasPrefix(ins, "INSERT INTO `default`.`t` (`id`, ") || !strings.HasSuffix(ins, ") FORMAT RowBinary") {
			http.Error(w, "Code: 62, e.displayText() = DB::Exception: Syntax error", 400)
			return
		}
		if q.Get("decompress") == "1" {
			var err error
			if body, err = decompress(body); err != nil {
				http.Error(w, "Code: 40, e.displayText() = DB::Exception: Checksum doesn't match: "+err.Error(), 500)
				return
			}
		}
		tok := q.Get("insert_deduplication_token")
		f.tokens = append(f.tokens, tok)
		if tok != "" && f.seen[tok] {
			return // deduplicated: the server answers 200 and writes nothing
		}
		f.seen[tok] = true
		f.inserts = append(f.inserts, body)
		return
	}
	switch s := string(body); {
	case s == "SELECT version()":
		io.WriteString(w, "23.8.2.7\n")
	case strings.HasPrefix(s, "DESCRIBE TABLE `default`.`t`"):
		io.WriteString(w, f.describe)
	default:
		http.Error(w, "Code: 62, e.displayText() = DB::Exception: unexpected query", 400)
	}
}

// newTypes are columns of types newer than 18.16, as DESCRIBE prints them.
const newTypes = "id\tUInt64\t\t\t\t\t\n" +
	"big\tInt128\t\t\t\t\t\n" +
	"ubig\tUInt256\t\t\t\t\t\n" +
	"d32\tDate32\t\t\t\t\t\n" +
	"dt64\tDateTime64(3, \\'Europe/Paris\\')\t\t\t\t\t\n" +
	"m\tMap(String, UInt16)\t\t\t\t\t\n" +
	"b\tBool\t\t\t\t\t\n" +
	"lc\tLowCardinality(Nullable(String))\t\t\t\t\t\n" +
	"d76\tDecimal(76, 2)\t\t\t\t\t\n" +
	"mat\tUInt8\tMATERIALIZED\t1\t\t\t\n"

func le(n int, v uint64) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, v)
	return b[:n]
}

// TestNewerTypesAndDedupTokens (protocol fake): the RowBinary bytes of
// types 18.16 lacks, as ClickHouse's format documentation lays them out,
// and insert_deduplication_token: the same for a redelivered batch (which
// the server then drops), different for other deliveries, absent when
// events carry no delivery.
func TestNewerTypesAndDedupTokens(t *testing.T) {
	f := &fakeCH{describe: newTypes, seen: map[string]bool{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := newSink(t, "url: "+srv.URL+"\ntable: t\naccess_token: tok123\ncompression: zstd\n")
	row := `{"id":1,"big":-2,"ubig":"1606938044258990275541962092341162602522202993782792835301376","d32":"1900-01-01","dt64":"2024-01-01 01:00:00.123","m":{"b":2,"a":1},"b":true,"lc":null,"d76":"-0.01"}`
	batch := func(offset int64) []*events.Event {
		e := ev(events.Insert, row)
		e.Delivered = &events.Position{Topic: "orders", Partition: 3, Offset: offset, HasOffset: true}
		return []*events.Event{e}
	}
	for _, b := range [][]*events.Event{batch(10), batch(10), batch(11), {ev(events.Insert, row)}} {
		if err := s.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	if f.tokens[0] == "" || f.tokens[0] != f.tokens[1] || f.tokens[2] == f.tokens[0] || f.tokens[3] != "" {
		t.Errorf("tokens %q: want equal for the redelivery, another for offset 11, none without delivery", f.tokens)
	}
	if len(f.inserts) != 3 {
		t.Errorf("%d inserts stored, want 3 (the redelivery deduplicated)", len(f.inserts))
	}
	for _, a := range f.auth {
		if a != "Bearer tok123" {
			t.Fatalf("Authorization %q", a)
		}
	}
	var want []byte
	want = append(want, le(8, 1)...)                       // id UInt64
	want = append(want, bytes.Repeat([]byte{0xff}, 16)...) // big Int128 -2: two's complement
	want[8] = 0xfe                                         //
	ubig := make([]byte, 32)                               // ubig UInt256 2^200
	ubig[25] = 1                                           //
	want = append(want, ubig...)                           //
	want = append(want, 0x21, 0x9c, 0xff, 0xff)            // d32 Date32 -25567 days
	want = append(want, le(8, 1704067200123)...)           // dt64 ms, Paris is UTC+1 in January
	want = append(want, 2, 1, 'a', 1, 0, 1, 'b', 2, 0)     // m: count, then key/value pairs
	want = append(want, 1)                                 // b Bool
	want = append(want, 1)                                 // lc NULL
	d76 := bytes.Repeat([]byte{0xff}, 32)                  // d76 -1 (·10^-2)
	want = append(want, d76...)                            //
	if got := f.inserts[0]; !bytes.Equal(got, want) {
		t.Errorf("RowBinary:\n got %s\nwant %s", hex.EncodeToString(got), hex.EncodeToString(want))
	}
}

// TestRetriesAndBreaker: 5xx answers are retried; after
// failure_threshold failed batches the breaker rejects without a request.
func TestRetriesAndBreaker(t *testing.T) {
	var mu sync.Mutex
	inserts := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch {
		case string(body) == "SELECT version()":
			io.WriteString(w, "18.16.1\n")
		case strings.HasPrefix(string(body), "DESCRIBE"):
			io.WriteString(w, "id\tUInt8\t\t\n")
		default:
			mu.Lock()
			inserts++
			mu.Unlock()
			http.Error(w, "Code: 252, e.displayText() = DB::Exception: Too many parts", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	s := newSink(t, "url: "+srv.URL+"\ntable: t\nmax_retries: 2\ninitial_backoff_ms: 1\nmax_backoff_ms: 2\ncircuit_breaker:\n  failure_threshold: 2\n  reset_timeout_secs: 60\n")
	for i := range 3 {
		err := s.Write(context.Background(), []*events.Event{ev(events.Insert, `{"id":1}`)})
		if err == nil {
			t.Fatalf("write %d succeeded", i)
		}
		var we *connector.WriteError
		if errors.As(err, &we) {
			t.Fatalf("write %d: %v is not a batch error", i, err)
		}
	}
	if inserts != 6 {
		t.Errorf("%d insert requests, want 6 (2 batches x 3 attempts; the third batch rejected by the breaker)", inserts)
	}
	if s.rejected.Value() != 1 || s.retried.Value() != 4 {
		t.Errorf("rejected %d, retried %d", s.rejected.Value(), s.retried.Value())
	}
	// Half-open after the timeout: a probe goes through.
	s.br.Now = func() time.Time { return time.Now().Add(61 * time.Second) }
	_ = s.Write(context.Background(), []*events.Event{ev(events.Insert, `{"id":1}`)})
	if inserts != 9 {
		t.Errorf("%d insert requests after the reset timeout, want 9", inserts)
	}
}

// decompress reads ClickHouse's compressed blocks to their end (ch-go's
// reader reports the end of the stream as a wrapped EOF).
func decompress(b []byte) ([]byte, error) {
	r := chcompress.NewReader(bytes.NewReader(b))
	var out bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		out.Write(buf[:n])
		if errors.Is(err, io.EOF) {
			return out.Bytes(), nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func TestConfigProblems(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"url: ftp://x\ntable: t\n", "config.url"},
		{"url: http://x\ntable: \"t; DROP\"\n", "config.table"},
		{"url: http://x\ntable: t\npassword: a\naccess_token: b\n", "config.access_token"},
		{"url: http://x\ntable: t\nsign_column: s\ndeleted_column: d\n", "config.deleted_column"},
		{"url: http://x\ntable: t\ncompression: snappy\n", "config.compression"},
		{"url: http://x\ntable: t\nbatch_size: 0\n", "config.batch_size"},
	} {
		_, ps := spec.DecodeString[Config](c.yaml, "config")
		if got := spec.Problems(ps).Error(); !strings.Contains(got, c.want) {
			t.Errorf("%q: %s, want a problem at %s", c.yaml, got, c.want)
		}
	}
}
