package objectstorage

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/testenv/azurite"
)

func TestMain(m *testing.M) {
	code := m.Run()
	azurite.Stop()
	os.Exit(code)
}

func startAzurite(t *testing.T) string { return azurite.Start(t) }

func newContainer(t *testing.T, url string) (string, *azblob.Client) {
	return azurite.NewContainer(t, url)
}

// listAzure reads back every blob of the container with its headers.
func listAzure(t *testing.T, c *azblob.Client, container string) []object {
	t.Helper()
	ctx := context.Background()
	var objs []object
	pager := c.NewListBlobsFlatPager(container, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			resp, err := c.DownloadStream(ctx, container, *b.Name, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			o := object{key: *b.Name, body: body}
			if resp.ContentType != nil {
				o.contentType = *resp.ContentType
			}
			if resp.ContentEncoding != nil {
				o.contentEncoding = *resp.ContentEncoding
			}
			objs = append(objs, o)
		}
	}
	return objectsByKey(objs)
}

// TestAzure writes to Azurite with each credential kind that Azurite
// accepts: connection string, account + access key, and a SAS token.
func TestAzure(t *testing.T) {
	url := startAzurite(t)
	ctx := context.Background()
	creds := map[string]func(container string) string{
		"connection_string": func(string) string {
			return "  connection_string: '" + azurite.ConnString(url) + "'\n"
		},
		"access_key": func(string) string {
			return "  account: " + azurite.Account + "\n  access_key: '" + azurite.Key + "'\n  endpoint: " + url + "\n"
		},
		"sas_token": func(container string) string {
			cred, err := azblob.NewSharedKeyCredential(azurite.Account, azurite.Key)
			if err != nil {
				t.Fatal(err)
			}
			q, err := sas.BlobSignatureValues{
				Protocol:      sas.ProtocolHTTPSandHTTP,
				ExpiryTime:    time.Now().Add(time.Hour).UTC(),
				ContainerName: container,
				Permissions:   (&sas.ContainerPermissions{Read: true, Write: true, Create: true, Delete: true, List: true}).String(),
			}.SignWithSharedKey(cred)
			if err != nil {
				t.Fatal(err)
			}
			return "  account: " + azurite.Account + "\n  sas_token: '?" + q.Encode() + "'\n  endpoint: " + url + "\n"
		},
	}
	for name, cred := range creds {
		t.Run(name, func(t *testing.T) {
			container, reader := newContainer(t, url)
			s := mustSink(t, "provider: azure\nbucket: "+container+"\nprefix: events\nformat: avro\nbatch_size: 25\nazure:\n"+cred(container))
			if err := s.Check(ctx); err != nil {
				t.Fatal(err)
			}
			batch := orders(60, time.Date(2024, 2, 29, 8, 0, 0, 0, time.UTC), time.Second)
			for range 2 {
				if err := s.Write(ctx, batch); err != nil {
					t.Fatal(err)
				}
			}
			objs := listAzure(t, reader, container)
			if len(objs) != 3 {
				t.Fatalf("want 3 blobs (25+25+10), got %d", len(objs))
			}
			total := 0
			for _, o := range objs {
				if !strings.HasPrefix(o.key, "events/20240229_0800") || !strings.HasSuffix(o.key, ".avro") || o.contentType != "application/avro" {
					t.Errorf("blob %s content type %q", o.key, o.contentType)
				}
				total += countRows(t, o.key, o.body)
			}
			if total != 60 {
				t.Errorf("%d rows, want 60", total)
			}
		})
	}
}

// TestAzureCompressedHeaders: a compressed text format stores its
// content encoding.
func TestAzureCompressedHeaders(t *testing.T) {
	url := startAzurite(t)
	container, reader := newContainer(t, url)
	s := mustSink(t, "provider: azure\nbucket: "+container+"\nformat: json\ncompression: zstd\nazure:\n  connection_string: '"+azurite.ConnString(url)+"'\n")
	checkLastOffset(t, s)
	if err := s.Write(context.Background(), orders(7, time.Now(), time.Second)); err != nil {
		t.Fatal(err)
	}
	objs := listAzure(t, reader, container)
	if len(objs) != 1 || objs[0].contentType != "application/json" || objs[0].contentEncoding != "zstd" || countRows(t, objs[0].key, objs[0].body) != 7 {
		t.Fatalf("got %+v", objs)
	}
}

// TestAzureErrors: a missing container is a permanent NotFound, a wrong key
// a permanent Auth error, a 503 a retryable one.
func TestAzureErrors(t *testing.T) {
	url := startAzurite(t)
	ctx := context.Background()
	missing := mustSink(t, "provider: azure\nbucket: nope\nazure:\n  connection_string: '"+azurite.ConnString(url)+"'\n")
	if err := missing.Check(ctx); resilience.ClassOf(err) != resilience.NotFound || resilience.Retryable(err) {
		t.Fatalf("missing container: got %v (class %v)", err, resilience.ClassOf(err))
	}
	container, _ := newContainer(t, url)
	const wrongKey = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ=="
	wrong := mustSink(t, "provider: azure\nbucket: "+container+"\nazure:\n  account: "+azurite.Account+"\n  access_key: '"+wrongKey+"'\n  endpoint: "+url+"\n")
	err := wrong.Write(ctx, orders(1, time.Now(), time.Second))
	if resilience.ClassOf(err) != resilience.Auth || resilience.Retryable(err) {
		t.Fatalf("wrong key: got %v (class %v)", err, resilience.ClassOf(err))
	}
	if strings.Contains(err.Error(), wrongKey) {
		t.Errorf("key in error: %v", err)
	}

	noRetries = true
	t.Cleanup(func() { noRetries = false })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-ms-error-code", "ServerBusy")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	busy := mustSink(t, "provider: azure\nbucket: c\nazure:\n  account: a\n  access_key: '"+azurite.Key+"'\n  endpoint: "+srv.URL+"/a\n")
	if err := busy.Write(ctx, orders(1, time.Now(), time.Second)); !resilience.Retryable(err) {
		t.Fatalf("503: got %v (class %v), want retryable", err, resilience.ClassOf(err))
	}
}
