package objectstorage

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/testenv"
)

// The Azurite development account: its name and key are published in
// Microsoft's documentation and accepted by every Azurite.
const (
	azuriteAccount = "devstoreaccount1"
	azuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

var azurite struct {
	once sync.Once
	cmd  *exec.Cmd
	url  string // blob service URL: http://127.0.0.1:port/devstoreaccount1
	err  error
	bin  string
	// exited receives Wait's result (Wait runs from the start, so that an
	// Azurite that dies at startup is noticed at once).
	exited chan error
}

// azuriteBin finds azurite-blob installed under the repository root:
// .ci/node/node_modules/.bin (npm install --prefix .ci/node azurite@3) or
// node_modules/.bin, else on the PATH.
func azuriteBin() string {
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			for _, p := range []string{".ci/node/node_modules/.bin/azurite-blob", "node_modules/.bin/azurite-blob"} {
				if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
					return filepath.Join(dir, p)
				}
			}
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	p, _ := exec.LookPath("azurite-blob")
	return p
}

// startAzurite starts one in-memory Azurite for the test binary (stopped in
// TestMain) and returns its blob service URL. Without Azurite installed the
// test skips, or fails under RIVVEN_REQUIRE_SERVICES=1.
func startAzurite(t *testing.T) string {
	t.Helper()
	azurite.once.Do(func() {
		azurite.bin = azuriteBin()
		if azurite.bin == "" {
			return
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			azurite.err = err
			return
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		dir, err := os.MkdirTemp("", "azurite-")
		if err != nil {
			azurite.err = err
			return
		}
		cmd := exec.Command(azurite.bin, "--blobHost", "127.0.0.1", "--blobPort", fmt.Sprint(port),
			"--inMemoryPersistence", "--skipApiVersionCheck", "--silent", "--disableTelemetry")
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
		if err := cmd.Start(); err != nil {
			azurite.err = err
			_ = os.RemoveAll(dir)
			return
		}
		azurite.cmd = cmd
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		azurite.exited = exited
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				_ = c.Close()
				break
			}
			select {
			case err := <-exited:
				azurite.err = fmt.Errorf("azurite exited: %v", err)
				azurite.cmd = nil
				_ = os.RemoveAll(dir)
				return
			default:
			}
			if time.Now().After(deadline) {
				azurite.err = fmt.Errorf("azurite did not listen on %s within 30s", addr)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		azurite.url = "http://" + addr + "/" + azuriteAccount
	})
	if azurite.bin == "" {
		msg := "azurite-blob not installed (npm install --prefix .ci/node azurite@3 at the repository root)"
		if testenv.Required() {
			t.Fatalf("%s, but %s=1", msg, testenv.EnvRequire)
		}
		t.Skip(msg)
	}
	if azurite.err != nil {
		t.Fatalf("azurite: %v", azurite.err)
	}
	return azurite.url
}

func stopAzurite() {
	if azurite.cmd != nil {
		_ = azurite.cmd.Process.Kill()
		<-azurite.exited
		_ = os.RemoveAll(azurite.cmd.Dir)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	stopAzurite()
	os.Exit(code)
}

func azuriteConnString(url string) string {
	return "DefaultEndpointsProtocol=http;AccountName=" + azuriteAccount + ";AccountKey=" + azuriteKey + ";BlobEndpoint=" + url + ";"
}

// newContainer creates a container with a unique name and returns a client
// to read it back.
func newContainer(t *testing.T, url string) (string, *azblob.Client) {
	t.Helper()
	c, err := azblob.NewClientFromConnectionString(azuriteConnString(url), nil)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("lake-%d", time.Now().UnixNano())
	if _, err := c.CreateContainer(context.Background(), name, nil); err != nil {
		t.Fatal(err)
	}
	return name, c
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
			return "  connection_string: '" + azuriteConnString(url) + "'\n"
		},
		"access_key": func(string) string {
			return "  account: " + azuriteAccount + "\n  access_key: '" + azuriteKey + "'\n  endpoint: " + url + "\n"
		},
		"sas_token": func(container string) string {
			cred, err := azblob.NewSharedKeyCredential(azuriteAccount, azuriteKey)
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
			return "  account: " + azuriteAccount + "\n  sas_token: '?" + q.Encode() + "'\n  endpoint: " + url + "\n"
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
	s := mustSink(t, "provider: azure\nbucket: "+container+"\nformat: json\ncompression: zstd\nazure:\n  connection_string: '"+azuriteConnString(url)+"'\n")
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
	missing := mustSink(t, "provider: azure\nbucket: nope\nazure:\n  connection_string: '"+azuriteConnString(url)+"'\n")
	if err := missing.Check(ctx); resilience.ClassOf(err) != resilience.NotFound || resilience.Retryable(err) {
		t.Fatalf("missing container: got %v (class %v)", err, resilience.ClassOf(err))
	}
	container, _ := newContainer(t, url)
	const wrongKey = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ=="
	wrong := mustSink(t, "provider: azure\nbucket: "+container+"\nazure:\n  account: "+azuriteAccount+"\n  access_key: '"+wrongKey+"'\n  endpoint: "+url+"\n")
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
	busy := mustSink(t, "provider: azure\nbucket: c\nazure:\n  account: a\n  access_key: '"+azuriteKey+"'\n  endpoint: "+srv.URL+"/a\n")
	if err := busy.Write(ctx, orders(1, time.Now(), time.Second)); !resilience.Retryable(err) {
		t.Fatalf("503: got %v (class %v), want retryable", err, resilience.ClassOf(err))
	}
}
