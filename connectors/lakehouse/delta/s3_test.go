package deltalake

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/rivven/rivven-connect/shared/objstore"
)

// fakeS3 runs gofakes3 (an S3 emulator that honours If-None-Match: * on
// PUT, answering 412 when the key exists) with bucket "lake", and records
// the conditional PUTs of commit files it saw.
func fakeS3(t *testing.T) (*objstore.S3Options, *recorder) {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket("lake"); err != nil {
		t.Fatal(err)
	}
	fake := gofakes3.New(backend).Server()
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, ".json") && strings.Contains(r.URL.Path, "/_delta_log/") {
			rec.add(r.Header.Get("If-None-Match"))
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &objstore.S3Options{Region: "us-east-1", Endpoint: srv.URL, ForcePathStyle: true, AccessKeyID: "AKIDRIVVEN", SecretAccessKey: "secret"}, rec
}

type recorder struct {
	mu  sync.Mutex
	ifs []string
}

func (r *recorder) add(s string) { r.mu.Lock(); r.ifs = append(r.ifs, s); r.mu.Unlock() }
func (r *recorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ifs...)
}

// TestS3ConditionalCommit: a commit file is PUT with If-None-Match: *, and
// a second PUT of the same key is refused as ErrExists.
func TestS3ConditionalCommit(t *testing.T) {
	o, rec := fakeS3(t)
	ctx := context.Background()
	st, err := objstore.NewS3(ctx, "lake", "tables/t", o)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutIfAbsent(ctx, "_delta_log/00000000000000000000.json", []byte("{}\n")); err != nil {
		t.Fatal(err)
	}
	err = st.PutIfAbsent(ctx, "_delta_log/00000000000000000000.json", []byte("{\"x\":1}\n"))
	if !errors.Is(err, objstore.ErrExists) {
		t.Fatalf("second conditional PUT: %v, want ErrExists", err)
	}
	b, _ := st.Get(ctx, "_delta_log/00000000000000000000.json")
	if string(b) != "{}\n" {
		t.Fatalf("the first commit was overwritten: %q", b)
	}
	if got := rec.all(); !slices.Equal(got, []string{"*", "*"}) {
		t.Fatalf("If-None-Match headers %q", got)
	}
	if _, err := st.Get(ctx, "_delta_log/missing"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
}

// TestS3TableAndRace: the table on the S3 emulator, written, read back by
// a plain log replay, and two writers racing for one version there.
func TestS3TableAndRace(t *testing.T) {
	o, _ := fakeS3(t)
	cfg := testConfig("s3://lake/warehouse/orders", func(c *Config) { c.S3 = o })
	open := func() objstore.Store {
		st, err := objstore.NewS3(context.Background(), "lake", "warehouse/orders", o)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	raceWriters(t, cfg, open)
	live := liveFiles(readLog(t, open()))
	var rows int
	for _, a := range live {
		b, err := open().Get(context.Background(), a["path"].(string))
		if err != nil || len(b) == 0 || string(b[:4]) != "PAR1" {
			t.Fatalf("data file %s: %v", a["path"], err)
		}
		rows++
	}
	if rows != 3 {
		t.Fatalf("%d live files, want 3", rows)
	}
}
