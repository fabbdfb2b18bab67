package deltalake

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/rivven/rivven-connect/shared/objstore"
)

// fakeGCS runs fake-gcs-server in process with bucket "lake", behind a
// proxy recording the ifGenerationMatch of each upload of a commit file.
func fakeGCS(t *testing.T) (*objstore.GCSOptions, func() []string) {
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
	var conds []string
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.Contains(r.URL.Query().Get("name"), "_delta_log/") && strings.HasSuffix(r.URL.Query().Get("name"), ".json") {
			mu.Lock()
			conds = append(conds, r.URL.Query().Get("ifGenerationMatch"))
			mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	return &objstore.GCSOptions{Endpoint: front.URL + "/storage/v1/"}, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), conds...)
	}
}

// TestGCSConditionalCommitAndTable: on fake-gcs-server a commit file is
// uploaded with ifGenerationMatch=0, a second upload of the same name is
// refused (412) as ErrExists, and a table written there reads back.
func TestGCSConditionalCommitAndTable(t *testing.T) {
	o, conds := fakeGCS(t)
	ctx := context.Background()
	st, err := objstore.NewGCS(ctx, "lake", "tables/t", o)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.PutIfAbsent(ctx, "_delta_log/00000000000000000000.json", []byte("{}\n")); err != nil {
		t.Fatal(err)
	}
	if err := st.PutIfAbsent(ctx, "_delta_log/00000000000000000000.json", []byte("{\"x\":1}\n")); !errors.Is(err, objstore.ErrExists) {
		t.Fatalf("second conditional upload: %v, want ErrExists", err)
	}
	if b, err := st.Get(ctx, "_delta_log/00000000000000000000.json"); err != nil || string(b) != "{}\n" {
		t.Fatalf("the first commit was overwritten: %q, %v", b, err)
	}
	for _, c := range conds() {
		if c != "0" {
			t.Fatalf("commit uploads sent ifGenerationMatch %q", conds())
		}
	}

	s := newTestSink(t, testConfig("gs://lake/warehouse/orders", func(c *Config) { c.GCS = o }))
	if err := s.Write(ctx, orders(0, 30, 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, orders(20, 30, 0)); err != nil {
		t.Fatal(err)
	}
	tbl, err := objstore.NewGCS(ctx, "lake", "warehouse/orders", o)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Close()
	log := readLog(t, tbl)
	live := liveFiles(log)
	if len(log) != 2 || len(live) != 2 {
		t.Fatalf("%d versions, %d live files; want 2 and 2", len(log), len(live))
	}
	for p := range live {
		b, err := tbl.Get(ctx, p)
		if err != nil || string(b[:4]) != "PAR1" {
			t.Fatalf("data file %s: %v", p, err)
		}
	}
	if got := conds(); len(got) < 4 {
		t.Fatalf("%d conditional commit uploads seen, want at least 4", len(got))
	}
}
