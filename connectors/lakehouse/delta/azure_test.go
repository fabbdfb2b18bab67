package deltalake

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rivven/rivven-connect/shared/objstore"
	"github.com/rivven/rivven-connect/shared/testenv/azurite"
)

func TestMain(m *testing.M) {
	code := m.Run()
	azurite.Stop()
	os.Exit(code)
}

// fakeAzure starts Azurite (npm) behind a proxy recording the If-None-Match
// header of each upload of a commit file, and returns the azure block
// addressing it through the proxy, and a new container.
func fakeAzure(t *testing.T) (*objstore.AzureOptions, string, func() []string) {
	t.Helper()
	u := azurite.Start(t)
	container, _ := azurite.NewContainer(t, u)
	target, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	target.Path = ""
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	var conds []string
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/_delta_log/") && strings.HasSuffix(r.URL.Path, ".json") {
			mu.Lock()
			conds = append(conds, r.Header.Get("If-None-Match"))
			mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	o := &objstore.AzureOptions{Account: azurite.Account, AccessKey: azurite.Key, Endpoint: front.URL + "/" + azurite.Account}
	return o, container, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), conds...)
	}
}

// TestAzureConditionalCommit: on Azurite a commit file is uploaded with
// If-None-Match: *, and a second upload of the same name is refused (409
// BlobAlreadyExists) as ErrExists, leaving the first.
func TestAzureConditionalCommit(t *testing.T) {
	o, container, conds := fakeAzure(t)
	ctx := context.Background()
	st, err := objstore.NewAzure(container, "tables/t", o)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.PutIfAbsent(ctx, "_delta_log/00000000000000000000.json", []byte("{}\n")); err != nil {
		t.Fatal(err)
	}
	err = st.PutIfAbsent(ctx, "_delta_log/00000000000000000000.json", []byte("{\"x\":1}\n"))
	if !errors.Is(err, objstore.ErrExists) {
		t.Fatalf("second conditional PUT: %v, want ErrExists", err)
	}
	if b, _ := st.Get(ctx, "_delta_log/00000000000000000000.json"); string(b) != "{}\n" {
		t.Fatalf("the first commit was overwritten: %q", b)
	}
	if got := conds(); !slices.Equal(got, []string{"*", "*"}) {
		t.Fatalf("If-None-Match headers %q", got)
	}
}

// TestAzureTableAndRace: two writers of an az:// table on Azurite race for
// one version: exactly one wins and the other retries after re-reading the
// log; every commit went up with If-None-Match: *; hyparquet reads the
// live data files (downloaded from the container) with the rows of all
// three commits.
func TestAzureTableAndRace(t *testing.T) {
	o, container, conds := fakeAzure(t)
	cfg := testConfig("az://"+container+"/warehouse/orders", func(c *Config) { c.Azure = o })
	open := func() objstore.Store {
		st, err := objstore.NewAzure(container, "warehouse/orders", o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	raceWriters(t, cfg, open)
	for _, c := range conds() {
		if c != "*" {
			t.Fatalf("a commit was uploaded with If-None-Match %q", c)
		}
	}
	// 3 versions, and the loser's first try: 4 conditional uploads.
	if n := len(conds()); n != 4 {
		t.Errorf("%d commit uploads, want 4 (3 versions and the refused one)", n)
	}
	st := open()
	log := readLog(t, st)
	dir := t.TempDir()
	ctx := context.Background()
	for p := range liveFiles(log) {
		rel, err := url.PathUnescape(p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := st.Get(ctx, rel)
		if err != nil {
			t.Fatal(err)
		}
		local := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(local, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := append(append(seq(0, 10), seq(100, 10)...), seq(200, 10)...)
	if got := orderIDs(t, tableRows(t, dir, log)); !slices.Equal(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}
}
