package iceberg

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// TestS3Warehouse: a SQL catalog whose warehouse is s3:// on gofakes3 (an
// S3 emulator in process), configured through the reference's s3 block
// (endpoint, path_style_access, static keys): data files, manifests and
// metadata go to the bucket, requests are signed with the configured key,
// and iceberg-go's scan reads the rows back from the bucket.
func TestS3Warehouse(t *testing.T) {
	e := newEnv(t)
	backend := s3mem.New()
	if err := backend.CreateBucket("lake"); err != nil {
		t.Fatal(err)
	}
	fake := gofakes3.New(backend).Server()
	var mu sync.Mutex
	var auths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s3 := &S3Options{Region: "us-east-1", Endpoint: srv.URL, PathStyleAccess: true, AccessKeyID: "AKIDRIVVEN", SecretAccessKey: "secret-key-not-logged"}
	cfg := e.config(func(c *Config) {
		c.Catalog.SQL.Warehouse = "s3://lake/warehouse"
		c.S3 = s3
	})
	s := e.sink(cfg)
	ctx := context.Background()
	if err := s.Write(ctx, orders(0, 120, 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, orders(60, 120, 0)); err != nil {
		t.Fatal(err)
	}
	objs, err := backend.ListBucket("lake", nil, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	var data, meta int
	for _, o := range objs.Contents {
		switch {
		case strings.HasPrefix(o.Key, "warehouse/analytics.db/orders/data/") && strings.HasSuffix(o.Key, ".parquet"):
			data++
		case strings.HasPrefix(o.Key, "warehouse/analytics.db/orders/metadata/"):
			meta++
		}
	}
	if data != 2 || meta < 4 {
		t.Errorf("bucket holds %d data files and %d metadata files; want 2 and at least 4", data, meta)
	}
	mu.Lock()
	for _, a := range auths {
		if !strings.Contains(a, "Credential=AKIDRIVVEN/") {
			t.Fatalf("request not signed with the configured key: %q", a)
		}
	}
	mu.Unlock()

	tbl := e.loadWith("analytics", "orders", s3.props())
	if got := ids(t, scan(t, tbl)); !slices.Equal(got, seq(0, 180)) {
		t.Fatalf("read %d ids, want 0..179 once each", len(got))
	}
}
