package objectstorage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/resilience"
)

// fakeS3 runs gofakes3 (an in-process S3 API) with bucket "lake". signed
// counts requests that carried an AWS signature with access key "test",
// md5 the PUTs with a Content-MD5 header.
func fakeS3(t *testing.T) (url string, client *s3.Client, signed *atomic.Int64) {
	url, client, signed, _ = fakeS3WithMD5(t)
	return url, client, signed
}

func fakeS3WithMD5(t *testing.T) (url string, client *s3.Client, signed, md5 *atomic.Int64) {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket("lake"); err != nil {
		t.Fatal(err)
	}
	fake := gofakes3.New(backend).Server()
	signed, md5 = &atomic.Int64{}, &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("Authorization"), "Credential=test/") {
			signed.Add(1)
		}
		if r.Method == http.MethodPut && r.Header.Get("Content-MD5") != "" {
			md5.Add(1)
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	client = s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("reader", "reader", ""),
	})
	return srv.URL, client, signed, md5
}

// listS3 reads back every object of the bucket with its headers.
func listS3(t *testing.T, c *s3.Client, bucket string) []object {
	t.Helper()
	ctx := context.Background()
	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	var objs []object
	for _, o := range out.Contents {
		got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(got.Body)
		_ = got.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, object{key: *o.Key, contentType: aws.ToString(got.ContentType), contentEncoding: aws.ToString(got.ContentEncoding), body: body})
	}
	return objectsByKey(objs)
}

func s3Config(url, extra string) string {
	return "provider: s3\nbucket: lake\nprefix: raw/orders\nbatch_size: 50\n" +
		"s3:\n  region: us-east-1\n  endpoint: " + url + "\n  force_path_style: true\n  access_key_id: test\n  secret_access_key: test-secret\n" + extra
}

// TestS3 writes through the S3 API (gofakes3, path style, static keys):
// objects carry the format's content type and encoding, a redelivery
// overwrites, and the health check leaves nothing behind.
func TestS3(t *testing.T) {
	url, client, signed, md5 := fakeS3WithMD5(t)
	s := mustSink(t, s3Config(url, "format: jsonl\ncompression: gzip\npartitioning: day\n"))
	ctx := context.Background()
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
	batch := orders(120, time.Date(2024, 5, 31, 23, 59, 0, 0, time.UTC), time.Second) // 60 on May 31, 60 on June 1
	for range 2 {
		if err := s.Write(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	objs := listS3(t, client, "lake")
	if len(objs) != 4 {
		t.Fatalf("want 4 objects (50+10 per day), got %d", len(objs))
	}
	total := 0
	for i, o := range objs {
		want := []string{"raw/orders/year=2024/month=05/day=31/", "raw/orders/year=2024/month=06/day=01/"}[i/2]
		if !strings.HasPrefix(o.key, want) || !strings.HasSuffix(o.key, ".jsonl.gz") {
			t.Errorf("key %s, want %s…jsonl.gz", o.key, want)
		}
		if o.contentType != "application/x-ndjson" || o.contentEncoding != "gzip" {
			t.Errorf("%s: content type %q encoding %q", o.key, o.contentType, o.contentEncoding)
		}
		total += countRows(t, o.key, o.body)
	}
	if total != 120 {
		t.Errorf("%d rows, want 120", total)
	}
	if signed.Load() == 0 {
		t.Error("no request was signed with the configured access key")
	}
	if md5.Load() != 9 { // the probe and 2 × 4 objects
		t.Errorf("%d PUTs with Content-MD5, want 9", md5.Load())
	}
}

// TestS3DefaultChain: without access_key_id the SDK's default chain
// supplies the credentials (here from the environment).
func TestS3DefaultChain(t *testing.T) {
	url, client, signed := fakeS3(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "from-env")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	s := mustSink(t, "provider: s3\nbucket: lake\nformat: csv\ns3:\n  endpoint: "+url+"\n  force_path_style: true\n")
	checkLastOffset(t, s)
	if err := s.Write(context.Background(), orders(3, time.Now(), time.Second)); err != nil {
		t.Fatal(err)
	}
	if objs := listS3(t, client, "lake"); len(objs) != 1 || !strings.HasSuffix(objs[0].key, ".csv") || objs[0].contentType != "text/csv" {
		t.Fatalf("got %v", objs)
	}
	if signed.Load() == 0 {
		t.Error("the environment's access key was not used")
	}
}

// TestS3MissingBucket: NoSuchBucket is a permanent NotFound.
func TestS3MissingBucket(t *testing.T) {
	url, _, _ := fakeS3(t)
	s := mustSink(t, strings.Replace(s3Config(url, ""), "bucket: lake", "bucket: missing", 1))
	err := s.Check(context.Background())
	if resilience.ClassOf(err) != resilience.NotFound || resilience.Retryable(err) {
		t.Fatalf("got %v (class %v), want a permanent NotFound", err, resilience.ClassOf(err))
	}
	err = s.Write(context.Background(), orders(2, time.Now(), time.Second))
	if resilience.ClassOf(err) != resilience.NotFound {
		t.Fatalf("write: got %v, want NotFound", err)
	}
}

// TestS3ErrorClasses: what an S3-compatible server answers decides whether
// the batch is retried: 5xx and throttling are, 403 is not.
func TestS3ErrorClasses(t *testing.T) {
	noRetries = true
	t.Cleanup(func() { noRetries = false })
	for _, c := range []struct {
		status    int
		code      string
		class     resilience.Class
		retryable bool
	}{
		{503, "SlowDown", resilience.RateLimited, true},
		{500, "InternalError", resilience.Connection, true},
		{429, "TooManyRequests", resilience.RateLimited, true},
		{403, "AccessDenied", resilience.Auth, false},
		{403, "SignatureDoesNotMatch", resilience.Auth, false},
		{404, "NoSuchBucket", resilience.NotFound, false},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(c.status)
			_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>`+c.code+`</Code><Message>test</Message></Error>`)
		}))
		s := mustSink(t, s3Config(srv.URL, ""))
		err := s.Write(context.Background(), orders(2, time.Now(), time.Second))
		srv.Close()
		if resilience.ClassOf(err) != c.class || resilience.Retryable(err) != c.retryable {
			t.Errorf("%d %s: got %v (class %v)", c.status, c.code, err, resilience.ClassOf(err))
		}
		if strings.Contains(err.Error(), "test-secret") {
			t.Errorf("secret in error: %v", err)
		}
	}
	// Nothing listening: a network error, retryable.
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	s := mustSink(t, s3Config(url, ""))
	if err := s.Write(context.Background(), orders(1, time.Now(), time.Second)); !resilience.Retryable(err) {
		t.Errorf("connection refused: got %v (class %v), want retryable", err, resilience.ClassOf(err))
	}
}

// TestS3StopsAfterFailedUpload: once an upload fails, the batch's
// remaining objects are handed back without being tried; the objects
// already stored count as written.
func TestS3StopsAfterFailedUpload(t *testing.T) {
	noRetries = true
	t.Cleanup(func() { noRetries = false })
	var puts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if puts.Add(1) == 1 {
			w.Header().Set("ETag", `"x"`)
			return // the first object is stored
		}
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `<Error><Code>InternalError</Code><Message>test</Message></Error>`)
	}))
	defer srv.Close()
	s := mustSink(t, s3Config(srv.URL, "")) // batch_size 50
	err := s.Write(context.Background(), orders(200, time.Now(), time.Millisecond))
	var we *connector.WriteError
	if !errors.As(err, &we) || len(we.Failed) != 150 {
		t.Fatalf("want a WriteError for the 150 events after the first object, got %v", err)
	}
	for i := range 50 {
		if we.Failed[i] != nil {
			t.Fatalf("event %d of the stored object reported failed", i)
		}
	}
	if !resilience.Retryable(we.Failed[199]) {
		t.Errorf("not retryable: %v", we.Failed[199])
	}
	if n := puts.Load(); n != 2 {
		t.Errorf("%d PUTs, want 2 (stop after the failed one)", n)
	}
}

// TestS3WithoutReadPermission: credentials that may write but not read
// objects (a HEAD answered 403, as S3 answers it without s3:GetObject)
// still write every batch; not knowing what an existing object holds,
// the sink writes a log's objects under names with their last offset, so
// it never replaces one it cannot see.
func TestS3WithoutReadPermission(t *testing.T) {
	url, client, _, _ := fakeS3WithMD5(t)
	target, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	fwd := httputil.NewSingleHostReverseProxy(target)
	heads := atomic.Int64{}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			heads.Add(1)
			w.WriteHeader(http.StatusForbidden)
			return
		}
		fwd.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	h := &pipeline.Handler{Name: "lake", Sink: mustSink(t, s3Config(proxy.URL, "format: jsonl\n"))}
	for range 2 {
		var recs []pipeline.Record
		for i, e := range orders(3, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Second) {
			recs = append(recs, pipeline.Record{ID: fmt.Sprint(40 + i), Topic: "orders", Partition: 3, Offset: int64(40 + i), HasOffset: true, Event: e})
		}
		if res, err := h.Handle(context.Background(), recs); err != nil || len(res.Failed) != 0 {
			t.Fatalf("%v %v", err, res.Failed)
		}
	}
	var keys []string
	for _, o := range listS3(t, client, "lake") {
		keys = append(keys, o.key)
	}
	if heads.Load() == 0 || len(keys) != 1 || keys[0] != "raw/orders/orders+3+0000000040+0000000042.jsonl" {
		t.Fatalf("%d HEADs; objects %v, want one under the name with its last offset", heads.Load(), keys)
	}
}
