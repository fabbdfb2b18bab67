package snowflake

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rivven/rivven-connect/connectors/warehouse/snowflake/snowflakefake"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/spec"
)

const (
	db, sch, tbl = "ANALYTICS", "CDC", "ORDERS"
	pipe         = "ORDERS-STREAMING"
)

func testKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile("testdata/rsa_key.p8")
	if err != nil {
		t.Fatal(err)
	}
	k, err := loadPrivateKey(b, "testdata/rsa_key.p8")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var orderCols = []snowflakefake.Column{
	{Name: "ID", Type: "NUMBER(38,0)", NotNull: true},
	{Name: "CUSTOMER", Type: "VARCHAR(10)"},
	{Name: "AMOUNT", Type: "NUMBER(12,2)"},
	{Name: "PAID", Type: "BOOLEAN"},
	{Name: "TAGS", Type: "ARRAY"},
	{Name: "_OP", Type: "VARCHAR(1)"},
}

// newFake starts a fake account where RIVVEN_USER has the test key's
// public key and RIVVEN_ROLE, the warehouse COMPUTE_WH exists and
// ANALYTICS.CDC.ORDERS exists with INSERT granted to RIVVEN_ROLE.
func newFake(t testing.TB) *snowflakefake.Server {
	t.Helper()
	f := snowflakefake.New("MYORG-ACCOUNT1", "RIVVEN_USER", &testKey(t).PublicKey)
	f.Roles = []string{"RIVVEN_ROLE"}
	f.Warehouses = []string{"COMPUTE_WH"}
	f.CreateTable(db, sch, tbl, orderCols...)
	f.Grant("INSERT", "TABLE", db+"."+sch+"."+tbl, "RIVVEN_ROLE")
	t.Cleanup(f.Close)
	return f
}

// sinkYAML is the config for the fake with extra keys; a retry: block in
// extra is merged into the fast test retries.
func sinkYAML(f *snowflakefake.Server, extra string) string {
	retry := ""
	if head, rest, ok := strings.Cut(extra, "retry:\n"); ok {
		var keep []string
		lines := strings.Split(rest, "\n")
		i := 0
		for ; i < len(lines) && strings.HasPrefix(lines[i], "  "); i++ {
			retry += lines[i] + "\n"
		}
		keep = append(keep, lines[i:]...)
		extra = head + strings.Join(keep, "\n")
	}
	return fmt.Sprintf(`account: myorg-account1
user: rivven_user
private_key_path: testdata/rsa_key.p8
role: RIVVEN_ROLE
warehouse: COMPUTE_WH
database: %s
schema: %s
table: %s
url: %s
retry:
  initial_backoff_ms: 1
  max_backoff_ms: 5
`, db, sch, tbl, f.URL()) + retry + extra
}

func newSink(t testing.TB, y string) *Sink {
	t.Helper()
	cfg, ps := spec.DecodeString[Config](y, "config")
	if len(ps) > 0 {
		t.Fatalf("config: %v", spec.Problems(ps))
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// rec is an insert delivered from topic partition 0 at offset off.
func rec(off int64, data string) *events.Event {
	e := events.New(events.Insert, "orders", events.RawPayload([]byte(data)))
	e.Delivered = &events.Position{Topic: "cdc.orders", Partition: 0, Offset: off, HasOffset: true, ID: fmt.Sprint(off)}
	return e
}

func orders(from, to int64) []*events.Event {
	var out []*events.Event
	for i := from; i < to; i++ {
		out = append(out, rec(i, fmt.Sprintf(`{"id":%d,"customer":"c%d","amount":%d.50,"paid":true,"tags":["a"]}`, i, i%7, i)))
	}
	return out
}

func ids(t *testing.T, f *snowflakefake.Server) []int {
	t.Helper()
	var out []int
	for _, r := range f.Rows(db, sch, tbl) {
		var n int
		fmt.Sscan(fmt.Sprint(r["ID"]), &n)
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

func wantIDs(t *testing.T, f *snowflakefake.Server, from, to int) {
	t.Helper()
	got := ids(t, f)
	if len(got) != to-from {
		t.Fatalf("table has %d rows %v, want ids %d..%d once each", len(got), got, from, to-1)
	}
	for i, id := range got {
		if id != from+i {
			t.Fatalf("table ids %v, want %d..%d once each", got, from, to-1)
		}
	}
}

const channel0 = "rivven_cdc_orders_0"

// TestFingerprintIsOpenSSLs: the fingerprint in iss is what the
// reference's openssl command prints for the same key.
func TestFingerprintIsOpenSSLs(t *testing.T) {
	want, err := os.ReadFile("testdata/rsa_key.fingerprint")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Fingerprint(&testKey(t).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if got != "SHA256:"+strings.TrimSpace(string(want)) {
		t.Errorf("fingerprint %s, openssl says SHA256:%s", got, strings.TrimSpace(string(want)))
	}
}

func TestKeyFormsOtherThanPKCS8AreRefused(t *testing.T) {
	for file, want := range map[string]string{
		"testdata/rsa_key_pkcs1.pem":      "PKCS#1",
		"testdata/rsa_key_encrypted.p8":   "encrypted keys are not supported",
		"testdata/rsa_key.pub":            "not a PKCS#8 private key",
		"testdata/rsa_key.fingerprint":    "no PEM block",
		"testdata/no-such-file.p8":        "no such file",
		"testdata/../testdata/rsa_key.p8": "",
	} {
		cfg := &Config{Account: "a", User: "u", PrivateKeyPath: file}
		_, err := readKey(cfg)
		if want == "" {
			if err != nil {
				t.Errorf("%s: %v", file, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want it to say %q", file, err, want)
		}
	}
	// An inline key's error never quotes the key.
	pem, _ := os.ReadFile("testdata/rsa_key_pkcs1.pem")
	_, err := readKey(&Config{PrivateKey: string(pem)})
	if err == nil || strings.Contains(err.Error(), "MII") || !strings.Contains(err.Error(), "openssl pkcs8 -topk8") {
		t.Errorf("inline PKCS#1 key: %v", err)
	}
}

func TestJWTClaimsAsSnowflakeDocuments(t *testing.T) {
	for account, want := range map[string]string{
		"myorg-account123":      "MYORG-ACCOUNT123",
		"xy12345":               "XY12345",
		"xy12345.us-east-1":     "XY12345",
		"xy12345.us-east-2.aws": "XY12345",
		"acme-abc.global":       "ACME",
	} {
		if got := jwtAccount(account); got != want {
			t.Errorf("jwtAccount(%q) = %q, want %q", account, got, want)
		}
	}
	k := testKey(t)
	now := time.Unix(1_800_000_000, 0)
	src, err := newJWTSource(&Config{Account: "xy12345.us-east-1", User: "rivven_user"}, k, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	tok, exp, err := src.Token()
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := os.ReadFile("testdata/rsa_key.fingerprint")
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return &k.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(func() time.Time { return now })); err != nil {
		t.Fatal(err)
	}
	if claims["iss"] != "XY12345.RIVVEN_USER.SHA256:"+strings.TrimSpace(string(fp)) || claims["sub"] != "XY12345.RIVVEN_USER" {
		t.Errorf("claims %v", claims)
	}
	if got := exp.Sub(now); got != jwtLifetime {
		t.Errorf("lifetime %v", got)
	}
	// Cached while it has time left; renewed before it runs out.
	if again, _, _ := src.Token(); again != tok {
		t.Error("a fresh token was not reused")
	}
	now = now.Add(jwtLifetime - jwtRenewBefore + time.Second)
	if renewed, _, _ := src.Token(); renewed == tok {
		t.Error("a token about to expire was reused")
	}
}

func TestWriteCommitsRowsAndOffsetToken(t *testing.T) {
	f := newFake(t)
	s := newSink(t, sinkYAML(f, ""))
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), orders(0, 5)); err != nil {
		t.Fatal(err)
	}
	wantIDs(t, f, 0, 5)
	if got := f.Committed(db, sch, pipe, channel0); got != "4" {
		t.Errorf("committed offset token %q, want 4", got)
	}
	r := f.Rows(db, sch, tbl)[0]
	if r["CUSTOMER"] != "c0" || fmt.Sprint(r["AMOUNT"]) != "0.50" || r["PAID"] != true {
		t.Errorf("row %v", r)
	}
	if s.written.Value() != 5 || s.ok.Value() == 0 {
		t.Errorf("written %d, requests ok %d", s.written.Value(), s.ok.Value())
	}
}

// TestRedeliveredBatchIsNotInsertedTwice: the same batch again, then a
// restarted sink (a new process) given an overlapping batch: rows at or
// below the channel's committed offset token are left out.
func TestRedeliveredBatchIsNotInsertedTwice(t *testing.T) {
	f := newFake(t)
	s := newSink(t, sinkYAML(f, ""))
	ctx := context.Background()
	if err := s.Write(ctx, orders(0, 5)); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, orders(0, 5)); err != nil {
		t.Fatal(err)
	}
	wantIDs(t, f, 0, 5)
	if s.skipped.Value() != 5 {
		t.Errorf("skipped %d, want 5", s.skipped.Value())
	}
	restarted := newSink(t, sinkYAML(f, ""))
	if err := restarted.Write(ctx, orders(3, 8)); err != nil {
		t.Fatal(err)
	}
	wantIDs(t, f, 0, 8)
	if restarted.skipped.Value() != 2 {
		t.Errorf("restarted sink skipped %d, want 2 (offsets 3 and 4)", restarted.skipped.Value())
	}
}

// TestAmbiguousAppendFailureDoesNotDuplicate: the append is carried out
// but its answer is lost (a 503 after the fact). The retry opens the
// channel again, which drops uncommitted rows or shows them committed;
// either way every row is in the table once.
func TestAmbiguousAppendFailureDoesNotDuplicate(t *testing.T) {
	for _, delay := range []time.Duration{0, 200 * time.Millisecond} {
		t.Run(fmt.Sprint(delay), func(t *testing.T) {
			f := newFake(t)
			f.CommitDelay = delay
			f.Fail(snowflakefake.Fault{Method: http.MethodPost, Path: "/rows", Status: 503, Times: 1, Apply: true})
			s := newSink(t, sinkYAML(f, ""))
			if err := s.Write(context.Background(), orders(0, 10)); err != nil {
				t.Fatal(err)
			}
			wantIDs(t, f, 0, 10)
			if s.retried.Value() != 1 {
				t.Errorf("retried %d, want 1", s.retried.Value())
			}
		})
	}
}

// TestCrashBeforeCommitThenRestart: the service has not committed when
// the first process gives up (commit timeout); a restarted sink given the
// redelivered batch leaves the table with every row once.
func TestCrashBeforeCommitThenRestart(t *testing.T) {
	f := newFake(t)
	f.HoldCommits(true)
	s := newSink(t, sinkYAML(f, "commit_timeout_secs: 1\nretry:\n  max_retries: 0\n"))
	err := s.Write(context.Background(), orders(0, 4))
	if resilience.ClassOf(err) != resilience.Timeout {
		t.Fatalf("Write while commits are held: %v, want a timeout", err)
	}
	if n := len(f.Rows(db, sch, tbl)); n != 0 {
		t.Fatalf("%d rows visible before any commit", n)
	}
	f.HoldCommits(false)
	restarted := newSink(t, sinkYAML(f, ""))
	if err := restarted.Write(context.Background(), orders(0, 4)); err != nil {
		t.Fatal(err)
	}
	wantIDs(t, f, 0, 4)
}

// TestChannelTakenOverByAnotherInstance: a second instance opening the
// same channel makes the first one's continuation token stale; the first
// opens it again, re-reads the committed token and goes on.
func TestChannelTakenOverByAnotherInstance(t *testing.T) {
	f := newFake(t)
	a, b := newSink(t, sinkYAML(f, "")), newSink(t, sinkYAML(f, ""))
	ctx := context.Background()
	if err := a.Write(ctx, orders(0, 3)); err != nil {
		t.Fatal(err)
	}
	if err := b.Write(ctx, orders(0, 6)); err != nil {
		t.Fatal(err)
	}
	if err := a.Write(ctx, orders(3, 9)); err != nil {
		t.Fatal(err)
	}
	wantIDs(t, f, 0, 9)
	var stale int
	for _, r := range f.Requests() {
		if r.Status == http.StatusBadRequest && strings.HasSuffix(r.Path, "/rows") {
			stale++
		}
	}
	if stale != 1 {
		t.Errorf("%d appends refused as stale, want 1", stale)
	}
}

func TestRetriesHonourRetryAfterAndSendNewRequestIDs(t *testing.T) {
	for _, status := range []int{408, 429, 500, 503} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			f := newFake(t)
			f.Fail(snowflakefake.Fault{Method: http.MethodPost, Path: "/rows", Status: status, RetryAfter: "1", Times: 1})
			s := newSink(t, sinkYAML(f, ""))
			var mu sync.Mutex
			var waits []time.Duration
			s.onRetry = func(d time.Duration) { mu.Lock(); waits = append(waits, d); mu.Unlock() }
			start := time.Now()
			s.now = func() time.Time { return start } // Retry-After is read against this clock
			if err := s.Write(context.Background(), orders(0, 2)); err != nil {
				t.Fatal(err)
			}
			if len(waits) != 1 || waits[0] != time.Second {
				t.Errorf("retry waits %v, want [1s] from Retry-After", waits)
			}
			seen := map[string]bool{}
			for _, r := range f.Requests() {
				if !strings.HasPrefix(r.Path, "/v2/") && r.Path != "/oauth/token" {
					continue // the SQL driver's requests carry requestId and request_guid instead
				}
				if r.RequestID == "" || seen[r.RequestID] {
					t.Errorf("%s %s: X-Request-ID %q missing or reused", r.Method, r.Path, r.RequestID)
				}
				seen[r.RequestID] = true
				if strings.Contains(r.Path, "/v2/streaming/") && r.Query.Get("requestId") == "" {
					t.Errorf("%s %s without requestId", r.Method, r.Path)
				}
			}
			wantIDs(t, f, 0, 2)
		})
	}
}

func TestNoRetryOn400_401_403_404(t *testing.T) {
	for _, status := range []int{400, 401, 403, 404} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			f := newFake(t)
			f.Fail(snowflakefake.Fault{Method: http.MethodPost, Path: "/rows", Status: status, Code: "X", Times: 5})
			s := newSink(t, sinkYAML(f, ""))
			err := s.Write(context.Background(), orders(0, 2))
			if err == nil || resilience.Retryable(err) {
				t.Fatalf("Write: %v, want a non-retryable error", err)
			}
			appends := 0
			for _, r := range f.Requests() {
				if strings.HasSuffix(r.Path, "/rows") {
					appends++
				}
			}
			if appends != 1 || s.retried.Value() != 0 || s.failed.Value() != 1 {
				t.Errorf("%d appends, %d retries, %d failed; want 1, 0, 1", appends, s.retried.Value(), s.failed.Value())
			}
		})
	}
}

func TestJWTIsVerifiedByTheService(t *testing.T) {
	ctx := context.Background()
	t.Run("another key", func(t *testing.T) {
		other, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		f := snowflakefake.New("MYORG-ACCOUNT1", "RIVVEN_USER", &other.PublicKey)
		t.Cleanup(f.Close)
		err = newSink(t, sinkYAML(f, "")).Check(ctx)
		if err == nil || !strings.Contains(err.Error(), "signature does not verify") || resilience.ClassOf(err) != resilience.Auth {
			t.Fatalf("Check with a key the user does not have: %v", err)
		}
	})
	t.Run("wrong fingerprint", func(t *testing.T) {
		f := newFake(t)
		k := testKey(t)
		now := time.Now()
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
			"iss": "MYORG-ACCOUNT1.RIVVEN_USER.SHA256:" + base64.StdEncoding.EncodeToString(make([]byte, 32)),
			"sub": "MYORG-ACCOUNT1.RIVVEN_USER", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		}).SignedString(k)
		req, _ := http.NewRequest(http.MethodGet, f.URL()+"/v2/streaming/hostname", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]string
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(body["message"], "fingerprint") {
			t.Errorf("wrong fingerprint: %d %v", resp.StatusCode, body)
		}
	})
	t.Run("expired", func(t *testing.T) {
		f := newFake(t)
		f.SetNow(func() time.Time { return time.Now().Add(2 * time.Hour) })
		err := newSink(t, sinkYAML(f, "")).Check(ctx)
		if err == nil || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("Check with an expired JWT: %v", err)
		}
	})
	t.Run("refreshed before expiry", func(t *testing.T) {
		f := newFake(t)
		s := newSink(t, sinkYAML(f, ""))
		if err := s.Write(ctx, orders(0, 2)); err != nil {
			t.Fatal(err)
		}
		// 58 minutes on: the first JWT (59 min) and the scoped token
		// minted with it are near their end; both are renewed.
		later := time.Now().Add(58 * time.Minute)
		f.SetNow(func() time.Time { return later })
		s.now = func() time.Time { return later }
		if err := s.Write(ctx, orders(2, 4)); err != nil {
			t.Fatal(err)
		}
		wantIDs(t, f, 0, 4)
	})
	t.Run("role not granted", func(t *testing.T) {
		f := newFake(t)
		f.Roles = nil
		err := newSink(t, sinkYAML(f, "")).Check(ctx)
		if err == nil || !strings.Contains(err.Error(), "not granted") {
			t.Fatalf("Check with a role the user lacks: %v", err)
		}
	})
	t.Run("bare answers", func(t *testing.T) {
		f := newFake(t)
		f.BareAnswers = true
		s := newSink(t, sinkYAML(f, ""))
		if err := s.Write(ctx, orders(0, 3)); err != nil {
			t.Fatal(err)
		}
		wantIDs(t, f, 0, 3)
	})
}

// TestBadRowsAreDeadLetteredWithColumnAndReason: rows that do not fit
// the table's columns (read with DESCRIBE TABLE) are reported per event
// with the column and why; the others are written.
func TestBadRowsAreDeadLetteredWithColumnAndReason(t *testing.T) {
	f := newFake(t)
	s := newSink(t, sinkYAML(f, ""))
	batch := []*events.Event{
		rec(0, `{"id":0,"customer":"ok","amount":1.25,"paid":"yes"}`),
		rec(1, `{"id":1,"amount":12345678901.5}`),
		rec(2, `{"id":2,"customer":"far too long a name"}`),
		rec(3, `{"customer":"no id"}`),
		rec(4, `{"id":4,"paid":"maybe"}`),
		rec(5, `{"id":5,"tags":{"not":"an array"}}`),
		rec(6, `{"id":6,"amount":"abc"}`),
		rec(7, `{"id":7}`),
	}
	err := s.Write(context.Background(), batch)
	var we *connector.WriteError
	if !errors.As(err, &we) {
		t.Fatalf("Write: %v, want a WriteError", err)
	}
	want := map[int]string{
		1: "column AMOUNT (NUMBER(12,2)): 12345678901.5 is out of range: the column holds 10 digits before the decimal point",
		2: "column CUSTOMER (VARCHAR(10)): 19 characters, the column holds 10",
		3: "column ID (NUMBER(38,0)): NULL in a NOT NULL column",
		4: `column PAID (BOOLEAN): "maybe" is not a boolean`,
		5: "column TAGS (ARRAY): a object is not an array",
		6: `column AMOUNT (NUMBER(12,2)): "abc" is not a number`,
	}
	if len(we.Failed) != len(want) {
		t.Errorf("failed %v", we.Failed)
	}
	for i, w := range want {
		if got := we.Failed[i]; got == nil || got.Error() != w {
			t.Errorf("event %d: %v, want %s", i, got, w)
		}
	}
	if got := ids(t, f); fmt.Sprint(got) != "[0 7]" {
		t.Errorf("rows %v, want [0 7]", got)
	}
	if n, _ := f.ErrorRows(db, sch, pipe, channel0); n != 0 {
		t.Errorf("the service saw %d bad rows; the sink should have kept them back", n)
	}
	if s.badRows.Value() != 6 {
		t.Errorf("dead-lettered %d", s.badRows.Value())
	}
}

// TestServerSideRowErrorsAreCounted: a row the sink could not judge
// (the table changed after it was read) is refused by the service on
// commit; the sink counts it and goes on.
func TestServerSideRowErrorsAreCounted(t *testing.T) {
	f := newFake(t)
	s := newSink(t, sinkYAML(f, ""))
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.CreateTable(db, sch, tbl, append([]snowflakefake.Column{{Name: "REGION", Type: "VARCHAR(2)", NotNull: true}}, orderCols...)...)
	if err := s.Write(context.Background(), orders(0, 3)); err != nil {
		t.Fatal(err)
	}
	if s.srvErr.Value() != 3 {
		t.Errorf("server-side error rows %d, want 3", s.srvErr.Value())
	}
}

func TestGzipAboveTheThreshold(t *testing.T) {
	f := newFake(t)
	s := newSink(t, sinkYAML(f, "compression_threshold_bytes: 400\n"))
	if err := s.Write(context.Background(), orders(0, 2)); err != nil { // ~130 bytes
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), orders(2, 40)); err != nil { // ~2.6 kB
		t.Fatal(err)
	}
	var encs []string
	for _, r := range f.Requests() {
		if strings.HasSuffix(r.Path, "/rows") {
			encs = append(encs, r.ContentEncoding)
		}
	}
	if fmt.Sprint(encs) != "[ gzip]" {
		t.Errorf("append encodings %q, want plain then gzip", encs)
	}
	wantIDs(t, f, 0, 40)
	off := newSink(t, sinkYAML(f, "compression_enabled: false\ncompression_threshold_bytes: 0\n"))
	if err := off.Write(context.Background(), orders(40, 80)); err != nil {
		t.Fatal(err)
	}
	rs := f.Requests()
	if last := rs[len(rs)-2]; !strings.HasSuffix(last.Path, "/rows") || last.ContentEncoding != "" {
		t.Errorf("compression_enabled: false sent %+v", last)
	}
}

func TestBatchSizeAndOneRecordPerRequest(t *testing.T) {
	f := newFake(t)
	s := newSink(t, sinkYAML(f, "batch_size: 3\n"))
	batch := orders(0, 7)
	// Two rows from one record (offset 2) stay in one request.
	extra := rec(2, `{"id":100}`)
	batch = append(batch[:3], append([]*events.Event{extra}, batch[3:]...)...)
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	var spans []string
	for _, r := range f.Requests() {
		if strings.HasSuffix(r.Path, "/rows") {
			spans = append(spans, r.Query.Get("startOffsetToken")+"-"+r.Query.Get("endOffsetToken"))
		}
	}
	if fmt.Sprint(spans) != "[0-1 2-3 4-6]" {
		t.Errorf("append spans %v, want [0-1 2-3 4-6]", spans)
	}
	if len(f.Rows(db, sch, tbl)) != 8 {
		t.Errorf("rows %d", len(f.Rows(db, sch, tbl)))
	}
}

func TestRowsWithoutOffsetsGoToTheElasticChannel(t *testing.T) {
	f := newFake(t)
	f.Fail(snowflakefake.Fault{Method: http.MethodPost, Path: "ELASTIC", Status: 500, Times: 1})
	s := newSink(t, sinkYAML(f, ""))
	var batch []*events.Event
	for i := 0; i < 3; i++ {
		e := events.New(events.Insert, "orders", events.RawPayload([]byte(fmt.Sprintf(`{"id":%d}`, i))))
		e.Delivered = &events.Position{Topic: "queue", ID: fmt.Sprint("m", i)}
		batch = append(batch, e)
	}
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	wantIDs(t, f, 0, 3)
	var tries []string
	for _, r := range f.Requests() {
		if strings.HasSuffix(r.Path, "/channels/ELASTIC/rows") {
			tries = append(tries, r.Query.Get("requestId")+"#"+r.Query.Get("retryCount"))
		}
	}
	if len(tries) != 2 || tries[0][:36] != tries[1][:36] || !strings.HasSuffix(tries[0], "#0") || !strings.HasSuffix(tries[1], "#1") {
		t.Errorf("elastic requests %v: want one requestId, retryCount 0 then 1", tries)
	}
}

func TestDeletesAndOpColumn(t *testing.T) {
	f := newFake(t)
	skip := newSink(t, sinkYAML(f, ""))
	del := events.New(events.Delete, "orders", events.RawPayload([]byte(`{"id":1}`)))
	del.Delivered = &events.Position{Topic: "cdc.orders", Offset: 1, HasOffset: true}
	if err := skip.Write(context.Background(), []*events.Event{rec(0, `{"id":0}`), del}); err != nil {
		t.Fatal(err)
	}
	if got := ids(t, f); fmt.Sprint(got) != "[0]" {
		t.Errorf("without op_column: %v", got)
	}
	f2 := newFake(t)
	withOp := newSink(t, sinkYAML(f2, "op_column: _op\n"))
	if err := withOp.Write(context.Background(), []*events.Event{rec(0, `{"id":0}`), del}); err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, r := range f2.Rows(db, sch, tbl) {
		ops = append(ops, fmt.Sprint(r["ID"], r["_OP"]))
	}
	if fmt.Sprint(ops) != "[0c 1d]" {
		t.Errorf("rows %v, want [0c 1d]", ops)
	}
}

func TestCreateTableFromTheEventSchema(t *testing.T) {
	f := snowflakefake.New("MYORG-ACCOUNT1", "RIVVEN_USER", &testKey(t).PublicKey)
	f.Roles = []string{"RIVVEN_ROLE"}
	f.Warehouses = []string{"COMPUTE_WH"}
	t.Cleanup(f.Close)
	e := rec(0, `{"id":1,"email":"a@b.c","total":"12.50","ok":true,"at":"2024-05-01T12:00:00Z","doc":{"k":1}}`)
	e.Source = &events.SourceInfo{Columns: `{"id":"integer not null","email":"character varying(255)","total":"numeric(10,2)","ok":"boolean","at":"timestamp with time zone","doc":"jsonb"}`}
	if err := newSink(t, sinkYAML(f, "")).Write(context.Background(), []*events.Event{e}); err == nil || !strings.Contains(err.Error(), "create_table") {
		t.Fatalf("missing table without create_table: %v", err)
	}
	s := newSink(t, sinkYAML(f, "create_table: true\n"))
	// The role may not create tables in the schema: the service refuses.
	err := s.Write(context.Background(), []*events.Event{e})
	if err == nil || !strings.Contains(err.Error(), "Insufficient privileges") || resilience.ClassOf(err) != resilience.Auth {
		t.Fatalf("create without CREATE TABLE on the schema: %v", err)
	}
	f.Grant("CREATE TABLE", "SCHEMA", db+"."+sch, "RIVVEN_ROLE")
	if err := s.Write(context.Background(), []*events.Event{e}); err != nil {
		t.Fatal(err)
	}
	// The creating role owns the table, which check accepts for INSERT.
	if err := s.Check(context.Background()); err != nil {
		t.Fatalf("Check after creating the table: %v", err)
	}
	rows := f.Rows(db, sch, tbl)
	if len(rows) != 1 || rows[0]["EMAIL"] != "a@b.c" {
		t.Fatalf("rows %v", rows)
	}
	tab, err := s.loadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var cols []string
	for _, c := range tab.order {
		cols = append(cols, c.name+" "+c.typ)
	}
	want := "[ID NUMBER(38,0) EMAIL VARCHAR(255) TOTAL NUMBER(10,2) OK BOOLEAN AT TIMESTAMP_TZ DOC VARIANT]"
	if fmt.Sprint(cols) != want {
		t.Errorf("created columns %v\nwant %s", cols, want)
	}
}

func TestCircuitBreakerOpensAndRejects(t *testing.T) {
	f := newFake(t)
	f.Fail(snowflakefake.Fault{Path: "/rows", Status: 503, Times: 100})
	s := newSink(t, sinkYAML(f, "retry:\n  max_retries: 0\ncircuit_breaker:\n  failure_threshold: 2\n  reset_timeout_secs: 30\n"))
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := s.Write(ctx, orders(0, 1)); err == nil {
			t.Fatal("Write succeeded through a failing service")
		}
	}
	before := len(f.Requests())
	err := s.Write(ctx, orders(0, 1))
	if !errors.Is(err, resilience.ErrOpen) || !strings.Contains(err.Error(), "circuit breaker is open") {
		t.Fatalf("third Write: %v, want the open circuit", err)
	}
	if len(f.Requests()) != before || s.rejected.Value() != 1 {
		t.Errorf("an open circuit sent %d requests, rejected %d", len(f.Requests())-before, s.rejected.Value())
	}
	// After reset_timeout_secs one probe goes through; success_threshold
	// (2) good probes close the circuit.
	later := time.Now().Add(31 * time.Second)
	s.now = func() time.Time { return later }
	f2 := newFake(t)
	s.c.base, s.c.ingest, s.c.scoped = f2.URL(), "", ""
	for i := 0; i < 3; i++ {
		if err := s.Write(ctx, orders(int64(i), int64(i+1))); err != nil {
			t.Fatalf("probe %d: %v", i, err)
		}
	}
	if s.br.State() != resilience.Closed {
		t.Errorf("breaker %v after good probes", s.br.State())
	}
}

func TestConfigProblemsNameTheirPath(t *testing.T) {
	base := "account: a\nuser: u\ndatabase: D\nschema: S\ntable: T\n"
	for y, want := range map[string]string{
		base: "private_key_path",
		base + "private_key_path: x\nprivate_key: y\n":                                         "private_key",
		"account: https://x\nuser: u\ndatabase: D\nschema: S\ntable: T\nprivate_key_path: k\n": "account",
		base + "private_key_path: k\ntable: a/b\n":                                             "table",
		base + "private_key_path: k\nretry:\n  jitter_factor: 2\n":                             "retry.jitter_factor",
		base + "private_key_path: k\ncolumn_case: lower\n":                                     "column_case",
	} {
		_, ps := spec.DecodeString[Config](y, "config")
		found := false
		for _, p := range ps {
			found = found || strings.HasSuffix(p.Path, want)
		}
		if !found {
			t.Errorf("%q: problems %v, want one at %s", y, ps, want)
		}
	}
	// A secret never shows in a problem.
	_, ps := spec.DecodeString[Config](base+"private_key: \"-----BEGIN PRIVATE KEY-----SECRETBODY\"\nprivate_key_path: k\n", "config")
	if strings.Contains(fmt.Sprint(ps), "SECRETBODY") {
		t.Errorf("problems show the key: %v", ps)
	}
}

// TestFakeRefusesMalformedRows checks the fake itself the way the service
// answers: NDJSON that is not RFC 8259, a missing newline, a payload over
// 4 MB, a stale continuation token.
func TestFakeRefusesMalformedRows(t *testing.T) {
	f := newFake(t)
	s := newSink(t, sinkYAML(f, "compression_enabled: false\n"))
	ctx := context.Background()
	cont, _, err := s.c.openChannel(ctx, "raw")
	if err != nil {
		t.Fatal(err)
	}
	for body, want := range map[string]string{
		"{\"ID\":1}":                      "followed by a newline",
		"{\"ID\":1,}\n":                   "not valid JSON",
		"{'ID':1}\n":                      "not valid JSON",
		"[1,2]\n":                         "not a JSON object",
		"{\"ID\":NaN}\n":                  "not valid JSON",
		strings.Repeat(" ", 5<<20) + "\n": "over the 4 MB limit",
	} {
		_, err := s.c.appendRows(ctx, "raw", cont, "", "", []byte(body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.20q: %v, want %q", body, err, want)
		}
	}
	if _, err := s.c.appendRows(ctx, "raw", "bm9wZTo5", "", "", []byte("{}\n")); err == nil || !strings.Contains(err.Error(), "not one this service issued") {
		t.Errorf("forged token: %v", err)
	}
	if _, _, err := s.c.openChannel(ctx, "raw"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.appendRows(ctx, "raw", cont, "", "", []byte("{}\n")); err == nil || !strings.Contains(err.Error(), "STALE_CONTINUATION_TOKEN_SEQUENCER") {
		t.Errorf("token of a re-opened channel: %v", err)
	}
}
