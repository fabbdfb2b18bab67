package iceberg

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/rivven/rivven-connect/shared/objstore"
	"github.com/rivven/rivven-connect/shared/testenv/azurite"
)

func TestMain(m *testing.M) {
	code := m.Run()
	azurite.Stop()
	os.Exit(code)
}

// newestMetadata is the location of the newest metadata file among keys
// (object names) under prefix.
func newestMetadata(t *testing.T, keys []string) string {
	t.Helper()
	newest, best := "", -1
	for _, k := range keys {
		if strings.HasSuffix(k, ".metadata.json") {
			if v := metadataVersion(k); v > best {
				newest, best = k, v
			}
		}
	}
	if newest == "" {
		t.Fatalf("no metadata file among %v", keys)
	}
	return newest
}

// cloudRoundTrip writes three batches (one a redelivery) through a memory
// catalog whose warehouse is wh, then opens the table from the newest
// metadata object listed by list with iceberg-go's file IO alone (no
// catalog) and reads every row back once. It returns the object names.
func cloudRoundTrip(t *testing.T, cfg *Config, list func() []string, locate func(key string) string) []string {
	t.Helper()
	ctx := context.Background()
	s := memSink(t, cfg)
	for _, b := range [][]int{{0, 50}, {50, 30}, {30, 50}} {
		if err := s.Write(ctx, orders(b[0], b[1], 0)); err != nil {
			t.Fatal(err)
		}
	}
	keys := list()
	var data int
	for _, k := range keys {
		if strings.Contains(k, "/data/") && strings.HasSuffix(k, ".parquet") {
			data++
		}
	}
	if data != 2 {
		t.Errorf("%d data files in the store, want 2 (the redelivery writes none)", data)
	}
	tbl := openMetadata(t, locate(newestMetadata(t, keys)), cfg.ioProps())
	if got := ids(t, scan(t, tbl)); !slices.Equal(got, seq(0, 80)) {
		t.Fatalf("read %d ids, want 0..79 once each", len(got))
	}
	if n := len(tbl.Metadata().Snapshots()); n != 2 {
		t.Errorf("%d snapshots, want 2", n)
	}
	return keys
}

// TestGCSWarehouse: a warehouse gs://lake/... on fake-gcs-server (in
// process), configured with the gcs block's endpoint: iceberg-go's GCS
// file IO writes data, manifests and metadata to the bucket with the JSON
// API (uploads included), and reads them back.
func TestGCSWarehouse(t *testing.T) {
	server, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", Writer: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(server.Stop)
	server.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "lake"})
	// Count the requests that reach the emulator: the sink's IO must go
	// to the configured endpoint, not to Google.
	target, _ := url.Parse(server.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	uploads := 0
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/upload/storage/v1/b/lake/") {
			mu.Lock()
			uploads++
			mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	cfg := memConfig("gs://lake/wh-"+strings.ToLower(t.Name()), func(c *Config) {
		c.GCS = &objstore.GCSOptions{Endpoint: front.URL + "/storage/v1/"}
	})
	list := func() []string {
		res, err := server.ListObjectsWithOptionsPaginated("lake", fakestorage.ListOptions{})
		if err != nil || res.NextPageToken != "" {
			t.Fatalf("listing: %v (more than a page: %q)", err, res.NextPageToken)
		}
		var keys []string
		for _, o := range res.Objects {
			keys = append(keys, o.Name)
		}
		return keys
	}
	keys := cloudRoundTrip(t, cfg, list, func(k string) string { return "gs://lake/" + k })
	mu.Lock()
	defer mu.Unlock()
	if uploads < len(keys) {
		t.Errorf("%d uploads through the configured endpoint for %d objects", uploads, len(keys))
	}
}

// TestAzureWarehouse: a warehouse abfs://<container>@devstoreaccount1...
// on Azurite (npm), configured with the azure block as delta-lake and
// object-storage take it (account and access key, endpoint; and a
// connection string): iceberg-go's Azure file IO writes the table to the
// container and reads it back.
func TestAzureWarehouse(t *testing.T) {
	u := azurite.Start(t)
	for name, creds := range map[string]*objstore.AzureOptions{
		"access_key":        {Account: azurite.Account, AccessKey: azurite.Key, Endpoint: u},
		"connection_string": {ConnectionString: azurite.ConnString(u)},
	} {
		t.Run(name, func(t *testing.T) {
			container, client := azurite.NewContainer(t, u)
			cfg := memConfig("abfs://"+container+"@"+azurite.Account+".dfs.core.windows.net/warehouse", func(c *Config) {
				c.Azure = creds
			})
			list := func() []string {
				var keys []string
				pager := client.NewListBlobsFlatPager(container, &azblob.ListBlobsFlatOptions{})
				for pager.More() {
					page, err := pager.NextPage(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					for _, b := range page.Segment.BlobItems {
						keys = append(keys, *b.Name)
					}
				}
				return keys
			}
			keys := cloudRoundTrip(t, cfg, list, func(k string) string {
				return "abfs://" + container + "@" + azurite.Account + ".dfs.core.windows.net/" + k
			})
			if !slices.ContainsFunc(keys, func(k string) bool { return strings.HasPrefix(k, "warehouse/analytics.db/orders/metadata/") }) {
				t.Errorf("no metadata under the warehouse: %v", keys)
			}
		})
	}
}
