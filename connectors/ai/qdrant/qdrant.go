// Package qdrant is the qdrant sink: it upserts event vectors as points of
// a Qdrant collection over gRPC with the official go-client, and deletes
// the points of CDC deletes.
package qdrant

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rivven/rivven-connect/connectors/ai/vectorsink"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Config is the sink's configuration: the reference's keys, then sparse
// vectors, collection creation and TLS.
type Config struct {
	URL               string                   `yaml:"url" required:"true" doc:"Qdrant gRPC endpoint (http://localhost:6334; https:// for Qdrant Cloud and TLS). The port defaults to 6334."`
	Collection        string                   `yaml:"collection" required:"true" doc:"Target collection name."`
	VectorField       string                   `yaml:"vector_field" default:"embedding" doc:"Field in event data containing the vector (array of floats; dot path)."`
	VectorName        string                   `yaml:"vector_name" doc:"Named vector space (for collections with several vectors); the unnamed vector when absent."`
	APIKey            string                   `yaml:"api_key" secret:"true" doc:"API key for Qdrant Cloud or a self-hosted Qdrant with auth (sent as the api-key gRPC header)."`
	IDStrategy        string                   `yaml:"id_strategy" default:"hash" enum:"field,uuid,hash" doc:"Point ID strategy: field (an unsigned integer field), uuid (a UUID string field) or hash (a deterministic UUID from the event key, else its data: a redelivery overwrites, never duplicates)."`
	IDField           string                   `yaml:"id_field" default:"id" doc:"Field the point ID is read from (field and uuid strategies)."`
	BatchSize         int                      `yaml:"batch_size" default:"1000" min:"1" max:"100000" doc:"Points per upsert request."`
	FlushIntervalSecs int                      `yaml:"flush_interval_secs" default:"5" min:"1" max:"3600" doc:"Maximum seconds before a partial batch is flushed; every Write is flushed before it returns, so no batch waits longer."`
	TimeoutSecs       int                      `yaml:"timeout_secs" default:"30" min:"1" max:"3600" doc:"gRPC deadline per request (seconds)."`
	Wait              bool                     `yaml:"wait" default:"true" doc:"Wait until Qdrant applied the upsert before acknowledging the batch."`
	SkipInvalidEvents bool                     `yaml:"skip_invalid_events" default:"false" doc:"Skip events with a missing or invalid vector or ID (counted in records.failed) instead of dead-lettering them."`
	MaxRetries        int                      `yaml:"max_retries" default:"3" min:"0" max:"100" doc:"Retries on transient failures (0 to disable)."`
	InitialBackoffMs  int                      `yaml:"initial_backoff_ms" default:"200" min:"1" doc:"Initial retry backoff (ms)."`
	MaxBackoffMs      int                      `yaml:"max_backoff_ms" default:"5000" min:"1" doc:"Maximum retry backoff (ms)."`
	CircuitBreaker    vectorsink.BreakerConfig `yaml:"circuit_breaker" doc:"Circuit breaker of this sink instance."`

	SparseVectorName   string `yaml:"sparse_vector_name" doc:"Named sparse vector of the collection written from the sparse fields below."`
	SparseIndicesField string `yaml:"sparse_indices_field" doc:"Field holding the sparse vector's indices (array of u32)."`
	SparseValuesField  string `yaml:"sparse_values_field" doc:"Field holding the sparse vector's values (array of floats, as many as indices)."`

	CreateCollection bool   `yaml:"create_collection" default:"false" doc:"Create the collection when it does not exist, with vector_size and distance (and the sparse vector when configured)."`
	VectorSize       int    `yaml:"vector_size" min:"0" max:"65536" doc:"Dimension of the collection's vectors: used to create it, and checked against an existing one (0 = take the collection's)."`
	Distance         string `yaml:"distance" default:"Cosine" enum:"Cosine,Euclid,Dot,Manhattan" doc:"Distance of a created collection."`
	TLSSkipVerify    bool   `yaml:"tls_skip_verify" default:"false" doc:"Do not verify the server certificate (https only; for self-signed test servers)."`
}

var collectionName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,255}$`)

// Validate checks what spans keys.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	if c.URL != "" {
		if _, _, _, err := parseURL(c.URL); err != nil {
			ps = append(ps, spec.Problem{Path: "url", Message: err.Error()})
		}
	}
	if c.Collection != "" && !collectionName.MatchString(c.Collection) {
		ps = append(ps, spec.Problem{Path: "collection", Message: fmt.Sprintf("collection %q must be 1-255 letters, digits, '_', '-' or '.'", c.Collection)})
	}
	if (c.SparseIndicesField == "") != (c.SparseValuesField == "") || (c.SparseIndicesField != "") != (c.SparseVectorName != "") {
		ps = append(ps, spec.Problem{Path: "sparse_vector_name", Message: "sparse_vector_name, sparse_indices_field and sparse_values_field must be set together"})
	}
	if c.CreateCollection && c.VectorSize == 0 {
		ps = append(ps, spec.Problem{Path: "vector_size", Message: "create_collection needs vector_size"})
	}
	if c.InitialBackoffMs > c.MaxBackoffMs {
		ps = append(ps, spec.Problem{Path: "initial_backoff_ms", Message: "initial_backoff_ms is above max_backoff_ms"})
	}
	return ps
}

func init() {
	catalog.RegisterSink[Config](catalog.Meta{
		Name: "qdrant", Category: catalog.AIML, Subcategory: "Vector Database",
		ConcurrentWrites: true,
		Description:      "Upserts event vectors into a Qdrant collection over gRPC; deletes on CDC deletes",
		Tags:             []string{"vector", "qdrant", "embedding", "rag", "grpc"},
		Metrics:          vectorsink.MetricNames("qdrant"),
	}, New)
}

func parseURL(raw string) (host string, port int, useTLS bool, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", 0, false, fmt.Errorf("url %q is not http(s)://host[:port]", raw)
	}
	switch u.Scheme {
	case "http":
	case "https":
		useTLS = true
	default:
		return "", 0, false, fmt.Errorf("url %q: scheme must be http or https", raw)
	}
	port = 6334
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return "", 0, false, fmt.Errorf("url %q: bad port", raw)
		}
	}
	return u.Hostname(), port, useTLS, nil
}

// DialOptions are added to the gRPC connection (tests).
var DialOptions []grpc.DialOption

// New builds the sink; it connects lazily (gRPC) and looks at the
// collection on the first write or check.
func New(ctx context.Context, cfg *Config) (connector.Sink, error) {
	host, port, useTLS, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	qc := &qdrant.Config{Host: host, Port: port, APIKey: cfg.APIKey, UseTLS: useTLS, SkipCompatibilityCheck: true, PoolSize: 1, GrpcOptions: DialOptions}
	if useTLS && cfg.TLSSkipVerify {
		qc.TLSConfig = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec // asked for by tls_skip_verify
	}
	client, err := qdrant.NewClient(qc)
	if err != nil {
		return nil, connector.Fatal(fmt.Errorf("qdrant: %w", err))
	}
	s := &sink{cfg: cfg, client: client, dim: cfg.VectorSize}
	s.Sink = vectorsink.New(ctx, s, vectorsink.Options{
		Prefix: "qdrant", VectorField: cfg.VectorField,
		IDs:       vectorsink.IDs{Strategy: cfg.IDStrategy, Field: cfg.IDField, Numeric: true, Exclude: []string{cfg.VectorField}},
		BatchSize: cfg.BatchSize, Timeout: time.Duration(cfg.TimeoutSecs) * time.Second, SkipInvalid: cfg.SkipInvalidEvents,
		MaxRetries: cfg.MaxRetries, InitialBackoff: time.Duration(cfg.InitialBackoffMs) * time.Millisecond,
		MaxBackoff: time.Duration(cfg.MaxBackoffMs) * time.Millisecond, Breaker: cfg.CircuitBreaker,
	})
	return s, nil
}

type sink struct {
	*vectorsink.Sink
	cfg    *Config
	client *qdrant.Client

	mu    sync.Mutex
	ready bool
	dim   int
}

// Write makes sure the collection is there, then writes.
func (s *sink) Write(ctx context.Context, batch []*events.Event) error {
	if err := s.ensure(ctx); err != nil {
		return err
	}
	return s.Sink.Write(ctx, batch)
}

// Check verifies that Qdrant answers and the collection exists with the
// configured dimension (or creates it when asked).
func (s *sink) Check(ctx context.Context) error {
	return s.ensure(ctx)
}

// Close closes the gRPC connection.
func (s *sink) Close(context.Context) error { return s.client.Close() }

// ensure looks at the collection once: creates it when asked, learns or
// checks its dimension, so that vectors of another size are dead-lettered
// one by one instead of failing a whole batch at the server.
func (s *sink) ensure(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.TimeoutSecs)*time.Second)
	defer cancel()
	exists, err := s.client.CollectionExists(ctx, s.cfg.Collection)
	if err != nil {
		return classify(err)
	}
	if !exists {
		if !s.cfg.CreateCollection {
			return connector.Fatal(fmt.Errorf("qdrant: collection %q does not exist (create it, or set create_collection with vector_size)", s.cfg.Collection))
		}
		if err := s.create(ctx); err != nil {
			return err
		}
	}
	info, err := s.client.GetCollectionInfo(ctx, s.cfg.Collection)
	if err != nil {
		return classify(err)
	}
	vc := info.GetConfig().GetParams().GetVectorsConfig()
	var size uint64
	if s.cfg.VectorName == "" {
		p := vc.GetParams()
		if p == nil {
			p = vc.GetParamsMap().GetMap()[""]
		}
		if p == nil {
			return connector.Fatal(fmt.Errorf("qdrant: collection %q has only named vectors; set vector_name", s.cfg.Collection))
		}
		size = p.GetSize()
	} else {
		p, ok := vc.GetParamsMap().GetMap()[s.cfg.VectorName]
		if !ok {
			return connector.Fatal(fmt.Errorf("qdrant: collection %q has no vector named %q", s.cfg.Collection, s.cfg.VectorName))
		}
		size = p.GetSize()
	}
	if s.cfg.SparseVectorName != "" {
		if _, ok := info.GetConfig().GetParams().GetSparseVectorsConfig().GetMap()[s.cfg.SparseVectorName]; !ok {
			return connector.Fatal(fmt.Errorf("qdrant: collection %q has no sparse vector named %q", s.cfg.Collection, s.cfg.SparseVectorName))
		}
	}
	if s.cfg.VectorSize > 0 && uint64(s.cfg.VectorSize) != size {
		return connector.Fatal(fmt.Errorf("qdrant: collection %q has vectors of %d dimensions, vector_size says %d", s.cfg.Collection, size, s.cfg.VectorSize))
	}
	s.dim = int(size)
	s.Sink.O.Dimension = s.dim
	s.ready = true
	return nil
}

func (s *sink) create(ctx context.Context) error {
	params := &qdrant.VectorParams{Size: uint64(s.cfg.VectorSize), Distance: qdrant.Distance(qdrant.Distance_value[s.cfg.Distance])}
	req := &qdrant.CreateCollection{CollectionName: s.cfg.Collection}
	if s.cfg.VectorName == "" {
		req.VectorsConfig = qdrant.NewVectorsConfig(params)
	} else {
		req.VectorsConfig = qdrant.NewVectorsConfigMap(map[string]*qdrant.VectorParams{s.cfg.VectorName: params})
	}
	if s.cfg.SparseVectorName != "" {
		req.SparseVectorsConfig = qdrant.NewSparseVectorsConfig(map[string]*qdrant.SparseVectorParams{s.cfg.SparseVectorName: {}})
	}
	err := s.client.CreateCollection(ctx, req)
	if status.Code(errors.Unwrap(err)) == codes.AlreadyExists || status.Code(err) == codes.AlreadyExists {
		return nil // another instance made it first
	}
	if err != nil {
		return classify(err)
	}
	return nil
}

// Prepare builds the point: its ID, dense (and sparse) vectors and the
// payload, which is every other field of the row.
func (s *sink) Prepare(op *vectorsink.Op) error {
	p := &qdrant.PointStruct{Id: pointID(op.ID)}
	dense := qdrant.NewVectorDense(op.Vector)
	if s.cfg.VectorName == "" && s.cfg.SparseVectorName == "" {
		p.Vectors = qdrant.NewVectorsDense(op.Vector)
	} else {
		named := map[string]*qdrant.Vector{s.cfg.VectorName: dense}
		if s.cfg.SparseVectorName != "" {
			sv, err := sparse(op.Row, s.cfg.SparseIndicesField, s.cfg.SparseValuesField)
			if err != nil {
				return err
			}
			named[s.cfg.SparseVectorName] = sv
		}
		p.Vectors = qdrant.NewVectorsMap(named)
	}
	payload := make(map[string]any, len(op.Row))
	for k, v := range op.Row {
		switch k {
		case s.cfg.VectorField, s.cfg.SparseIndicesField, s.cfg.SparseValuesField, "__deleted":
			continue // the vectors, and ExtractNewRecordState's delete marker
		}
		payload[k] = vectorsink.Plain(v)
	}
	pm, err := qdrant.TryValueMap(payload)
	if err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	p.Payload = pm
	op.Item = p
	return nil
}

func sparse(r map[string]any, idxField, valField string) (*qdrant.Vector, error) {
	iv, ok := vectorsink.Get(r, idxField)
	if !ok {
		return nil, fmt.Errorf("sparse indices field %q is missing", idxField)
	}
	idx, err := vectorsink.Uint32s(iv, idxField)
	if err != nil {
		return nil, err
	}
	vv, ok := vectorsink.Get(r, valField)
	if !ok {
		return nil, fmt.Errorf("sparse values field %q is missing", valField)
	}
	vals, err := vectorsink.Float32s(vv, valField)
	if err != nil {
		return nil, err
	}
	if len(idx) != len(vals) {
		return nil, fmt.Errorf("sparse vector has %d indices and %d values", len(idx), len(vals))
	}
	return qdrant.NewVectorSparse(idx, vals), nil
}

func pointID(id vectorsink.ID) *qdrant.PointId {
	if id.IsNum {
		return qdrant.NewIDNum(id.Num)
	}
	return qdrant.NewIDUUID(id.Str)
}

// Upsert sends one batch of points.
func (s *sink) Upsert(ctx context.Context, ops []*vectorsink.Op) error {
	pts := make([]*qdrant.PointStruct, len(ops))
	for i, op := range ops {
		pts[i] = op.Item.(*qdrant.PointStruct)
	}
	wait := s.cfg.Wait
	_, err := s.client.Upsert(ctx, &qdrant.UpsertPoints{CollectionName: s.cfg.Collection, Wait: &wait, Points: pts})
	return classify(err)
}

// Delete removes the points of deleted rows.
func (s *sink) Delete(ctx context.Context, ops []*vectorsink.Op) error {
	ids := make([]*qdrant.PointId, len(ops))
	for i, op := range ops {
		ids[i] = pointID(op.ID)
	}
	wait := s.cfg.Wait
	_, err := s.client.Delete(ctx, &qdrant.DeletePoints{CollectionName: s.cfg.Collection, Wait: &wait, Points: qdrant.NewPointsSelector(ids...)})
	return classify(err)
}

// classify maps gRPC status codes to the framework's error classes, with
// the server's retry-after for rate limits.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var re *qdrant.QdrantResourceExhaustedError
	if errors.As(err, &re) {
		return resilience.RateLimitedAfter(fmt.Errorf("qdrant: %w", err), time.Duration(re.RetryAfterS)*time.Second)
	}
	return vectorsink.FromGRPC("qdrant", err)
}

// ConcurrentWrites: after the one-time collection check (under mu), a
// Write's points are its own and the gRPC client is safe for concurrent
// use; upserts and deletes by ID are idempotent.
func (*sink) ConcurrentWrites() bool { return true }
