package gcssrc

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// No GCS emulator runs in-process, so Load is tested against a small fake
// of the two download endpoints the client may use with
// STORAGE_EMULATOR_HOST set: the XML API (GET /<bucket>/<object>) and the
// JSON API media download (GET .../b/<bucket>/o/<object>?alt=media). It
// checks the client asks for the right object; it does not check
// authentication, which the emulator mode switches off.
func TestLoadFromGCSProtocolFake(t *testing.T) {
	doc := "sinks:\n  out: {connector: stdout, topics: [t]}\n"
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.Path+"?"+r.URL.RawQuery)
		switch {
		case r.Method == http.MethodGet && (r.URL.Path == "/pipelines/prod/orders.yaml" ||
			strings.HasSuffix(r.URL.EscapedPath(), "/b/pipelines/o/prod%2Forders.yaml") && r.URL.Query().Get("alt") == "media"):
			w.Header().Set("Content-Type", "application/yaml")
			w.Write([]byte(doc))
		default:
			http.Error(w, `{"error":{"code":404,"message":"No such object"}}`, http.StatusNotFound)
		}
	}))
	defer srv.Close()
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(srv.URL, "http://"))

	got, err := Load(context.Background(), "gs://pipelines/prod/orders.yaml")
	if err != nil {
		t.Fatalf("%v (requests: %v)", err, paths)
	}
	if string(got) != doc {
		t.Fatalf("got %q", got)
	}
	if _, err := Load(context.Background(), "gs://pipelines/missing.yaml"); err == nil {
		t.Fatal("missing object loaded")
	}
	if _, _, err := Parse("gs://bucket"); err == nil {
		t.Error("gs://bucket accepted")
	}
}
