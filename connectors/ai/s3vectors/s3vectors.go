// Package s3vectors is the s3-vectors sink: it puts event vectors into an
// Amazon S3 Vectors index with aws-sdk-go-v2 (PutVectors, DeleteVectors),
// creating the vector bucket and the index when asked.
package s3vectors

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3vectors"
	"github.com/aws/aws-sdk-go-v2/service/s3vectors/document"
	"github.com/aws/aws-sdk-go-v2/service/s3vectors/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/rivven/rivven-connect/connectors/ai/vectorsink"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Config is the sink's configuration, the reference's keys.
type Config struct {
	Region            string                   `yaml:"region" required:"true" doc:"AWS region (us-east-1); credentials follow the AWS default chain."`
	EndpointURL       string                   `yaml:"endpoint_url" doc:"Custom endpoint URL (LocalStack, testing)."`
	VectorBucketName  string                   `yaml:"vector_bucket_name" required:"true" doc:"S3 Vectors bucket name (3-63 characters: lower-case letters, digits, hyphens)."`
	IndexName         string                   `yaml:"index_name" required:"true" doc:"Index name within the bucket (1-512 characters)."`
	Dimension         int                      `yaml:"dimension" required:"true" min:"1" max:"10000" doc:"Vector dimension (1-10,000)."`
	DistanceMetric    string                   `yaml:"distance_metric" default:"cosine" enum:"cosine,euclidean" doc:"Distance metric of a created index."`
	AutoCreate        bool                     `yaml:"auto_create" default:"true" doc:"Create the vector bucket and the index at the first write when they do not exist (another instance creating them meanwhile is fine)."`
	VectorField       string                   `yaml:"vector_field" default:"embedding" doc:"Field containing the dense vector (array of f32-range floats; values beyond ±3.4e38 are rejected)."`
	IDStrategy        string                   `yaml:"id_strategy" default:"field" enum:"field,uuid,hash" doc:"Vector key strategy: field (a string or number field), uuid (a UUID string field) or hash (a deterministic UUID from the event key, else its data)."`
	IDField           string                   `yaml:"id_field" default:"id" doc:"Field to extract the vector key from (field/uuid strategies)."`
	MetadataFields    []string                 `yaml:"metadata_fields" doc:"Fields to include as vector metadata (JSON values as S3 Vectors documents), besides _event_type, _stream, _namespace, _timestamp and _key."`
	BatchSize         int                      `yaml:"batch_size" default:"100" min:"1" max:"10000" doc:"Vectors per batch; requests carry at most 500 (the PutVectors limit)."`
	FlushIntervalSecs int                      `yaml:"flush_interval_secs" default:"5" min:"1" max:"3600" doc:"Maximum seconds before a partial batch is flushed; every Write is flushed before it returns, so no batch waits longer."`
	TimeoutSecs       int                      `yaml:"timeout_secs" default:"30" min:"1" max:"300" doc:"Per-request timeout (seconds)."`
	SkipInvalidEvents bool                     `yaml:"skip_invalid_events" default:"false" doc:"Skip events with missing or invalid vectors (counted in records.failed) instead of dead-lettering them."`
	MaxRetries        int                      `yaml:"max_retries" default:"3" min:"0" max:"100" doc:"Maximum retries on transient failures (0 to disable)."`
	InitialBackoffMs  int                      `yaml:"initial_backoff_ms" default:"200" min:"1" doc:"Initial retry backoff (ms)."`
	MaxBackoffMs      int                      `yaml:"max_backoff_ms" default:"5000" min:"1" doc:"Maximum retry backoff (ms)."`
	CircuitBreaker    vectorsink.BreakerConfig `yaml:"circuit_breaker" doc:"Circuit breaker of this sink instance."`
}

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*[a-z0-9]$`)

// reservedMetadata are the keys the sink adds to every vector.
var reservedMetadata = []string{"_event_type", "_stream", "_namespace", "_timestamp", "_key"}

// maxPut is PutVectors' limit of vectors per request.
const maxPut = 500

// Validate checks names and metadata fields.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	if n := c.VectorBucketName; n != "" && (len(n) < 3 || len(n) > 63 || !bucketName.MatchString(n)) {
		ps = append(ps, spec.Problem{Path: "vector_bucket_name", Message: fmt.Sprintf("%q must be 3-63 characters of lower-case letters, digits and hyphens, starting and ending with a letter or digit", n)})
	}
	if len(c.IndexName) > 512 {
		ps = append(ps, spec.Problem{Path: "index_name", Message: "index_name is longer than 512 characters"})
	}
	for i, f := range c.MetadataFields {
		for _, r := range reservedMetadata {
			if f == r {
				ps = append(ps, spec.Problem{Path: fmt.Sprintf("metadata_fields[%d]", i), Message: fmt.Sprintf("%q is a metadata key the sink sets itself (%v)", f, reservedMetadata)})
			}
		}
		if f == "" || f[0] == '.' || f[len(f)-1] == '.' || regexp.MustCompile(`\.\.`).MatchString(f) {
			ps = append(ps, spec.Problem{Path: fmt.Sprintf("metadata_fields[%d]", i), Message: fmt.Sprintf("field path %q has an empty segment", f)})
		}
	}
	if c.InitialBackoffMs > c.MaxBackoffMs {
		ps = append(ps, spec.Problem{Path: "initial_backoff_ms", Message: "initial_backoff_ms is above max_backoff_ms"})
	}
	return ps
}

func init() {
	catalog.RegisterSink[Config](catalog.Meta{
		Name: "s3-vectors", Category: catalog.AIML, Subcategory: "Vector Database",
		ConcurrentWrites: true,
		Description:      "Puts event vectors with metadata into an Amazon S3 Vectors index, creating the bucket and index; deletes on CDC deletes",
		Tags:             []string{"vector", "s3", "aws", "embedding", "rag"},
		Metrics:          vectorsink.MetricNames("s3vectors"),
	}, New)
}

// HTTPClient is the SDK's HTTP client (tests).
var HTTPClient *http.Client

// New builds the sink.
func New(ctx context.Context, cfg *Config) (connector.Sink, error) {
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(cfg.Region)}
	if HTTPClient != nil {
		opts = append(opts, awsconfig.WithHTTPClient(HTTPClient))
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3-vectors: aws config: %w", err)
	}
	client := s3vectors.NewFromConfig(ac, func(o *s3vectors.Options) {
		if cfg.EndpointURL != "" {
			o.BaseEndpoint = aws.String(cfg.EndpointURL)
		}
		o.RetryMaxAttempts = 1 // the sink retries and counts retries itself
	})
	s := &sink{cfg: cfg, client: client}
	s.Sink = vectorsink.New(ctx, s, vectorsink.Options{
		Prefix: "s3vectors", VectorField: cfg.VectorField, Dimension: cfg.Dimension,
		IDs:       vectorsink.IDs{Strategy: cfg.IDStrategy, Field: cfg.IDField, Exclude: []string{cfg.VectorField}},
		BatchSize: min(cfg.BatchSize, maxPut), Timeout: time.Duration(cfg.TimeoutSecs) * time.Second, SkipInvalid: cfg.SkipInvalidEvents,
		MaxRetries: cfg.MaxRetries, InitialBackoff: time.Duration(cfg.InitialBackoffMs) * time.Millisecond,
		MaxBackoff: time.Duration(cfg.MaxBackoffMs) * time.Millisecond, Breaker: cfg.CircuitBreaker,
	})
	return s, nil
}

type sink struct {
	*vectorsink.Sink
	cfg    *Config
	client *s3vectors.Client

	mu    sync.Mutex
	ready bool
}

// Write provisions (once), then writes.
func (s *sink) Write(ctx context.Context, batch []*events.Event) error {
	if err := s.provision(ctx); err != nil {
		return err
	}
	return s.Sink.Write(ctx, batch)
}

// Check verifies that the index exists with the configured dimension
// (creating bucket and index with auto_create).
func (s *sink) Check(ctx context.Context) error { return s.provision(ctx) }

func (s *sink) provision(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.TimeoutSecs)*time.Second)
	defer cancel()
	bucket, index := aws.String(s.cfg.VectorBucketName), aws.String(s.cfg.IndexName)
	out, err := s.client.GetIndex(ctx, &s3vectors.GetIndexInput{VectorBucketName: bucket, IndexName: index})
	var nf *types.NotFoundException
	switch {
	case errors.As(err, &nf) && s.cfg.AutoCreate:
		if _, err := s.client.CreateVectorBucket(ctx, &s3vectors.CreateVectorBucketInput{VectorBucketName: bucket}); err != nil && !conflict(err) {
			return classify(err)
		}
		_, err := s.client.CreateIndex(ctx, &s3vectors.CreateIndexInput{
			VectorBucketName: bucket, IndexName: index, DataType: types.DataTypeFloat32,
			Dimension: aws.Int32(int32(s.cfg.Dimension)), DistanceMetric: types.DistanceMetric(s.cfg.DistanceMetric),
		})
		if err != nil && !conflict(err) {
			return classify(err)
		}
		if out, err = s.client.GetIndex(ctx, &s3vectors.GetIndexInput{VectorBucketName: bucket, IndexName: index}); err != nil {
			return classify(err)
		}
	case errors.As(err, &nf):
		return connector.Fatal(fmt.Errorf("s3-vectors: index %q in vector bucket %q does not exist (create it, or set auto_create)", s.cfg.IndexName, s.cfg.VectorBucketName))
	case err != nil:
		return classify(err)
	}
	if d := aws.ToInt32(out.Index.Dimension); int(d) != s.cfg.Dimension {
		return connector.Fatal(fmt.Errorf("s3-vectors: index %q has dimension %d, the config says %d", s.cfg.IndexName, d, s.cfg.Dimension))
	}
	s.ready = true
	return nil
}

// conflict is a ConflictException: the resource exists (another replica
// created it first), which is what provisioning wanted.
func conflict(err error) bool {
	var ce *types.ConflictException
	return errors.As(err, &ce)
}

// Prepare builds the vector: its key, float32 data and metadata.
func (s *sink) Prepare(op *vectorsink.Op) error {
	key := op.ID.String()
	if len(key) > 1024 {
		return fmt.Errorf("vector key is %d characters, above S3 Vectors' 1024", len(key))
	}
	md := map[string]any{
		"_event_type": string(op.Event.Type),
		"_stream":     op.Event.Stream,
		"_timestamp":  op.Event.Timestamp.UTC().Format(time.RFC3339Nano),
		"_key":        key,
	}
	if op.Event.Namespace != nil {
		md["_namespace"] = *op.Event.Namespace
	}
	for _, f := range s.cfg.MetadataFields {
		if v, ok := vectorsink.Get(op.Row, f); ok {
			md[f] = vectorsink.Plain(v)
		}
	}
	op.Item = types.PutInputVector{Key: aws.String(key), Data: &types.VectorDataMemberFloat32{Value: op.Vector}, Metadata: document.NewLazyDocument(md)}
	return nil
}

// Upsert puts one batch of vectors.
func (s *sink) Upsert(ctx context.Context, ops []*vectorsink.Op) error {
	vs := make([]types.PutInputVector, len(ops))
	for i, op := range ops {
		vs[i] = op.Item.(types.PutInputVector)
	}
	_, err := s.client.PutVectors(ctx, &s3vectors.PutVectorsInput{VectorBucketName: aws.String(s.cfg.VectorBucketName), IndexName: aws.String(s.cfg.IndexName), Vectors: vs})
	return classify(err)
}

// Delete deletes the vectors of deleted rows.
func (s *sink) Delete(ctx context.Context, ops []*vectorsink.Op) error {
	keys := make([]string, len(ops))
	for i, op := range ops {
		keys[i] = op.ID.String()
	}
	_, err := s.client.DeleteVectors(ctx, &s3vectors.DeleteVectorsInput{VectorBucketName: aws.String(s.cfg.VectorBucketName), IndexName: aws.String(s.cfg.IndexName), Keys: keys})
	return classify(err)
}

// classify classifies an SDK error by HTTP status with the service's
// error code and message and its Retry-After.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		msg := err.Error()
		var ae smithy.APIError
		if errors.As(err, &ae) {
			msg = ae.ErrorCode() + ": " + ae.ErrorMessage()
		}
		return resilience.FromHTTP(re.HTTPStatusCode(), re.Response.Header.Get("Retry-After"), time.Now(), fmt.Errorf("s3-vectors: HTTP %d %s", re.HTTPStatusCode(), msg))
	}
	return fmt.Errorf("s3-vectors: %w", err)
}

// ConcurrentWrites: after the one-time provisioning (under mu), a Write's
// vectors are its own and the AWS client is safe for concurrent use;
// puts and deletes by key are idempotent.
func (*sink) ConcurrentWrites() bool { return true }
