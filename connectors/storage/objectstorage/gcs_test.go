package objectstorage

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/iterator"

	"github.com/rivven/rivven-connect/shared/resilience"
)

// fakeGCS runs fake-gcs-server in process with bucket "lake", behind a
// proxy that records the Authorization header of each request; endpoint is
// what gcs.endpoint is set to.
func fakeGCS(t *testing.T) (endpoint string, server *fakestorage.Server, auths func() []string) {
	t.Helper()
	server, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", Writer: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(server.Stop)
	server.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "lake"})
	target, _ := url.Parse(server.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	var seen []string
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	return front.URL + "/storage/v1/", server, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// listGCS reads back every object of the bucket, undecoded.
func listGCS(t *testing.T, server *fakestorage.Server, bucket string) []object {
	t.Helper()
	ctx := context.Background()
	c := server.Client()
	var objs []object
	it := c.Bucket(bucket).Objects(ctx, nil)
	for {
		a, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.Bucket(bucket).Object(a.Name).ReadCompressed(true).NewReader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(r)
		_ = r.Close()
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, object{key: a.Name, contentType: a.ContentType, contentEncoding: a.ContentEncoding, body: body})
	}
	return objectsByKey(objs)
}

// TestGCS writes through the GCS JSON API (fake-gcs-server): content type
// and encoding are stored, redelivery overwrites, the probe is removed.
func TestGCS(t *testing.T) {
	endpoint, server, auths := fakeGCS(t)
	s := mustSink(t, "provider: gcs\nbucket: lake\nprefix: cdc\nformat: csv\ncompression: gzip\npartitioning: hour\nbatch_size: 500\ngcs:\n  endpoint: "+endpoint+"\n")
	checkLastOffset(t, s)
	ctx := context.Background()
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
	batch := orders(90, time.Date(2024, 7, 4, 11, 59, 30, 0, time.UTC), time.Second) // 30 in hour 11, 60 in hour 12
	for range 2 {
		if err := s.Write(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	objs := listGCS(t, server, "lake")
	if len(objs) != 2 {
		t.Fatalf("want 2 objects, got %d", len(objs))
	}
	for i, o := range objs {
		want := []string{"cdc/year=2024/month=07/day=04/hour=11/20240704_115930_", "cdc/year=2024/month=07/day=04/hour=12/20240704_120000_"}[i]
		if !strings.HasPrefix(o.key, want) || !strings.HasSuffix(o.key, ".csv.gz") {
			t.Errorf("key %s, want %s<id>.csv.gz", o.key, want)
		}
		if !strings.HasPrefix(o.contentType, "text/csv") || o.contentEncoding != "gzip" {
			t.Errorf("%s: content type %q encoding %q", o.key, o.contentType, o.contentEncoding)
		}
		if n := countRows(t, o.key, o.body); n != []int{30, 60}[i] {
			t.Errorf("%s: %d rows", o.key, n)
		}
	}
	for _, a := range auths() {
		if a != "" {
			t.Fatalf("an emulator endpoint without credentials should send none, got %q", a)
		}
	}

	missing := mustSink(t, "provider: gcs\nbucket: nope\ngcs:\n  endpoint: "+endpoint+"\n")
	if err := missing.Check(ctx); resilience.ClassOf(err) != resilience.NotFound || resilience.Retryable(err) {
		t.Fatalf("missing bucket: got %v (class %v), want a permanent NotFound", err, resilience.ClassOf(err))
	}
}

// serviceAccount writes a service-account key file whose token_uri is a
// local token server, and returns its path.
func serviceAccount(t *testing.T) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"token-from-sa","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(tokens.Close)
	sa, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "test",
		"private_key_id": "k1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "writer@test.iam.gserviceaccount.com",
		"client_id":      "1",
		"token_uri":      tokens.URL,
	})
	p := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(p, sa, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestGCSCredentials: service_account_path and use_adc (through
// GOOGLE_APPLICATION_CREDENTIALS) authenticate every request.
func TestGCSCredentials(t *testing.T) {
	sa := serviceAccount(t)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", sa)
	for _, c := range []string{"service_account_path: " + sa, "use_adc: true"} {
		t.Run(strings.Fields(c)[0], func(t *testing.T) {
			endpoint, server, auths := fakeGCS(t)
			s := mustSink(t, "provider: gcs\nbucket: lake\ngcs:\n  endpoint: "+endpoint+"\n  "+c+"\n")
			if err := s.Write(context.Background(), orders(5, time.Now(), time.Second)); err != nil {
				t.Fatal(err)
			}
			if objs := listGCS(t, server, "lake"); len(objs) != 1 || countRows(t, objs[0].key, objs[0].body) != 5 {
				t.Fatalf("got %v", objs)
			}
			seen := auths()
			if len(seen) == 0 {
				t.Fatal("no request reached the server")
			}
			for _, a := range seen {
				if !strings.HasPrefix(a, "Bearer ") || len(a) < 20 {
					t.Fatalf("request without a bearer token: %q", a)
				}
			}
		})
	}
	if _, err := newSink(context.Background(), decodeConfig(t, "provider: gcs\nbucket: b\ngcs: {service_account_path: /nonexistent/sa.json}\n")); err == nil {
		t.Fatal("a missing key file should fail at startup")
	}
}

// TestGCSErrorClasses: 503 and 429 are retryable, 403 is not.
func TestGCSErrorClasses(t *testing.T) {
	noRetries = true
	t.Cleanup(func() { noRetries = false })
	for _, c := range []struct {
		status int
		class  resilience.Class
	}{{503, resilience.Connection}, {429, resilience.RateLimited}, {403, resilience.Auth}, {401, resilience.Auth}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(c.status)
			_, _ = io.WriteString(w, `{"error":{"code":`+strconv.Itoa(c.status)+`,"message":"test"}}`)
		}))
		s := mustSink(t, "provider: gcs\nbucket: lake\ngcs:\n  endpoint: "+srv.URL+"/storage/v1/\n")
		err := s.Write(context.Background(), orders(1, time.Now(), time.Second))
		srv.Close()
		if resilience.ClassOf(err) != c.class || resilience.Retryable(err) != c.class.Retryable() {
			t.Errorf("%d: got %v (class %v), want %v", c.status, err, resilience.ClassOf(err), c.class)
		}
	}
}

// TestGCSKeyWinsOverADC: the reference's own GCS example sets
// service_account_path and use_adc: true together. It is accepted and the
// explicit key is used: here ADC points at a file that does not exist,
// so a write only authenticates through the key. Before, the pair was
// refused at validation.
func TestGCSKeyWinsOverADC(t *testing.T) {
	sa := serviceAccount(t)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "no-such-adc.json"))
	endpoint, server, auths := fakeGCS(t)
	s := mustSink(t, "provider: gcs\nbucket: lake\ngcs:\n  endpoint: "+endpoint+"\n  service_account_path: "+sa+"\n  use_adc: true\n")
	if err := s.Write(context.Background(), orders(3, time.Now(), time.Second)); err != nil {
		t.Fatal(err)
	}
	if objs := listGCS(t, server, "lake"); len(objs) != 1 {
		t.Fatalf("got %v", objs)
	}
	for _, a := range auths() {
		if !strings.HasPrefix(a, "Bearer ") {
			t.Fatalf("request without the key's bearer token: %q", a)
		}
	}
}
