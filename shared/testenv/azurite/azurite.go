// Package azurite runs Azurite, Microsoft's Azure Storage emulator from
// npm, for the tests of a package that writes to Azure Blob Storage: one
// in-memory blob service per test binary, started at the first Start and
// stopped by Stop (from TestMain). Without Azurite installed the test
// skips, or fails under RIVVEN_REQUIRE_SERVICES=1 (testenv).
package azurite

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/rivven/rivven-connect/shared/testenv"
)

// The Azurite development account: its name and key are published in
// Microsoft's documentation and accepted by every Azurite.
const (
	Account = "devstoreaccount1"
	Key     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

var state struct {
	once sync.Once
	cmd  *exec.Cmd
	dir  string
	url  string // blob service URL: http://127.0.0.1:port/devstoreaccount1
	err  error
	bin  string
	// exited receives Wait's result (Wait runs from the start, so that an
	// Azurite that dies at startup is noticed at once).
	exited chan error
}

// bin finds azurite-blob installed under the repository root
// (.ci/node/node_modules/.bin, as .ci/services.sh installs it, or
// node_modules/.bin), else on the PATH.
func bin() string {
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

// Start starts the test binary's Azurite (once) and returns its blob
// service URL.
func Start(t testing.TB) string {
	t.Helper()
	state.once.Do(start)
	if state.bin == "" {
		testenv.Unavailable(t, "azurite-blob not installed (npm ci --prefix .ci/node at the repository root)")
		return ""
	}
	if state.err != nil {
		t.Fatalf("azurite: %v", state.err)
	}
	return state.url
}

func start() {
	state.bin = bin()
	if state.bin == "" {
		return
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		state.err = err
		return
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	dir, err := os.MkdirTemp("", "azurite-")
	if err != nil {
		state.err = err
		return
	}
	cmd := exec.Command(state.bin, "--blobHost", "127.0.0.1", "--blobPort", fmt.Sprint(port),
		"--inMemoryPersistence", "--skipApiVersionCheck", "--silent", "--disableTelemetry")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		state.err = err
		_ = os.RemoveAll(dir)
		return
	}
	state.cmd, state.dir = cmd, dir
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	state.exited = exited
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// Node starts slowly on a loaded machine; the bound is generous.
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			break
		}
		select {
		case err := <-exited:
			state.err = fmt.Errorf("azurite exited: %v", err)
			state.cmd = nil
			_ = os.RemoveAll(dir)
			return
		default:
		}
		if time.Now().After(deadline) {
			state.err = fmt.Errorf("azurite did not listen on %s within 60s", addr)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	state.url = "http://" + addr + "/" + Account
}

// Stop ends the Azurite this binary started, if any; call it from
// TestMain after m.Run.
func Stop() {
	if state.cmd != nil {
		_ = state.cmd.Process.Kill()
		<-state.exited
		_ = os.RemoveAll(state.dir)
	}
}

// ConnString is the connection string of the development account at url.
func ConnString(url string) string {
	return "DefaultEndpointsProtocol=http;AccountName=" + Account + ";AccountKey=" + Key + ";BlobEndpoint=" + url + ";"
}

var seq atomic.Int64

// NewContainer creates a container of a unique name on the Azurite at url
// and returns its name and a client of the account.
func NewContainer(t testing.TB, url string) (string, *azblob.Client) {
	t.Helper()
	c, err := azblob.NewClientFromConnectionString(ConnString(url), nil)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("lake-%d-%d", time.Now().UnixNano(), seq.Add(1))
	if _, err := c.CreateContainer(context.Background(), name, nil); err != nil {
		t.Fatal(err)
	}
	return name, c
}
