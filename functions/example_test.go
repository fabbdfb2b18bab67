package functions_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/host"
	"github.com/rivven/rivven-connect/shared/topic"
)

// generatedFunction reads the host.Function a generated main starts.
func generatedFunction(t *testing.T, dir string) host.Function {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(dir, "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`host\.Function\{Kind: "([a-z]+)", Connector: "([^"]+)"\}`).FindSubmatch(src)
	if m == nil {
		t.Fatalf("%s/main.go starts no host.Function", dir)
	}
	return host.Function{Kind: string(m[1]), Connector: string(m[2])}
}

// Every function hosts its package's own connector, never a legacy name
// that happened to be registered last.
func TestFunctionsHostTheirCanonicalConnector(t *testing.T) {
	for _, kind := range []string{"sink", "transform"} {
		dirs, _ := os.ReadDir(kind)
		for _, d := range dirs {
			fn := generatedFunction(t, filepath.Join(kind, d.Name()))
			e, ok := catalog.Lookup(catalog.Kind(fn.Kind), fn.Connector)
			switch {
			case !ok:
				t.Errorf("%s/%s hosts %s, which the catalog does not know", kind, d.Name(), fn)
			case e.Name != fn.Connector || e.LegacyOf != "":
				t.Errorf("%s/%s hosts %s, not its canonical connector", kind, d.Name(), fn)
			}
		}
	}
}

// The shipped cdc-to-lake example deploys functions/sink/objectstorage for
// a sink whose connector is object-storage; it must start with the
// pipeline as shipped, and with the connector spelled any way the catalog
// takes it (aliases, legacy names). The bucket is gofakes3, an in-process
// S3 API, so the sink's cold-start health check really writes.
func TestObjectStorageFunctionHostsTheShippedExample(t *testing.T) {
	backend := s3mem.New()
	if err := backend.CreateBucket("lake"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	// The AWS SDK reads these itself; the pipeline names no endpoint.
	t.Setenv("AWS_ENDPOINT_URL_S3", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	shipped, err := os.ReadFile("../infra/terraform/examples/cdc-to-lake/aws/pipeline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fn := generatedFunction(t, filepath.Join("sink", "objectstorage"))
	for _, spelling := range []string{"object-storage", "object_storage", "object-store", "s3"} {
		t.Run(spelling, func(t *testing.T) {
			doc := strings.Replace(string(shipped), "connector: object-storage", "connector: "+spelling, 1)
			env := map[string]string{
				"RIVVEN_PIPELINE": doc, "LAKE_BUCKET": "lake", "PG_HOST": "db.example", "PG_PASSWORD": "x",
				"RIVVEN_BROKER_REGION": "us-east-1", "RIVVEN_BROKER_QUEUE_PREFIX": "shop-",
			}
			lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
			rt, err := host.Init(context.Background(), fn, host.Options{Lookup: lookup, Producer: topic.NewMemory(), Log: testWriter{t}})
			if err != nil {
				t.Fatalf("%s with connector: %s: %v", fn, spelling, err)
			}
			if rt.Component != "sinks.lake" {
				t.Errorf("hosts %s", rt.Component)
			}
			if err := rt.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
