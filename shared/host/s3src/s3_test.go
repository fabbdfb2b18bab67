package s3src

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Load reads through aws-sdk-go-v2 from gofakes3, an in-process S3
// emulator, reached the way a deployment would point at an S3-compatible
// store: AWS_ENDPOINT_URL_S3.
func TestLoadFromS3Emulator(t *testing.T) {
	backend := s3mem.New()
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	defer srv.Close()
	doc := []byte("sinks:\n  out: {connector: stdout, topics: [t]}\n")
	if err := backend.CreateBucket("pipelines"); err != nil {
		t.Fatal(err)
	}
	if _, err := backend.PutObject("pipelines", "prod/orders.yaml", map[string]string{}, bytes.NewReader(doc), int64(len(doc)), nil); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ENDPOINT_URL_S3", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")

	got, err := Load(context.Background(), "s3://pipelines/prod/orders.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, doc) {
		t.Fatalf("got %q", got)
	}
	if _, err := Load(context.Background(), "s3://pipelines/missing.yaml"); err == nil || !strings.Contains(err.Error(), "s3://pipelines/missing.yaml") {
		t.Fatalf("missing object: %v", err)
	}
	for _, bad := range []string{"s3://", "s3://bucket", "s3://bucket/", "gs://b/k"} {
		if _, _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}
