// Package pinecone is the pinecone sink: it upserts event vectors into a
// Pinecone index through the data plane's gRPC API with the official
// go-pinecone client, and deletes the vectors of CDC deletes.
package pinecone

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/pinecone-io/go-pinecone/v5/pinecone"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/rivven/rivven-connect/connectors/ai/vectorsink"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Config is the sink's configuration: the reference's keys, then
// index_name (host resolution through the control plane) and
// metadata_fields.
type Config struct {
	APIKey                   string                   `yaml:"api_key" required:"true" secret:"true" doc:"Pinecone API key (from the console)."`
	IndexHost                string                   `yaml:"index_host" doc:"Index host URL (https://my-index-abc.svc.pinecone.io); resolved from index_name through the control plane when absent."`
	IndexName                string                   `yaml:"index_name" doc:"Index name, to resolve index_host through the control plane's describe_index and to check its dimension."`
	ControlPlaneHost         string                   `yaml:"control_plane_host" doc:"Control plane URL (default https://api.pinecone.io), used with index_name."`
	Namespace                string                   `yaml:"namespace" doc:"Namespace for logical partitioning (Pinecone's __default__ when absent)."`
	VectorField              string                   `yaml:"vector_field" default:"embedding" doc:"Field containing the dense vector (array of f32-range floats; values beyond ±3.4e38 are rejected)."`
	SparseVectorIndicesField string                   `yaml:"sparse_vector_indices_field" doc:"Field for sparse vector indices (array of u32)."`
	SparseVectorValuesField  string                   `yaml:"sparse_vector_values_field" doc:"Field for sparse vector values (array of f32)."`
	MetadataFields           []string                 `yaml:"metadata_fields" doc:"Fields sent as the vector's metadata; every other field of the row when absent."`
	IDStrategy               string                   `yaml:"id_strategy" default:"field" enum:"field,uuid,hash" doc:"Vector ID strategy: field (a string or number field), uuid (a UUID string field) or hash (a deterministic UUID from the event key, else its data)."`
	IDField                  string                   `yaml:"id_field" default:"id" doc:"Field to extract the vector ID from (field/uuid strategies)."`
	BatchSize                int                      `yaml:"batch_size" default:"1000" min:"1" max:"100000" doc:"Vectors per upsert request (Pinecone accepts up to 1000 per request and 2 MB)."`
	FlushIntervalSecs        int                      `yaml:"flush_interval_secs" default:"5" min:"1" max:"3600" doc:"Maximum seconds before a partial batch is flushed; every Write is flushed before it returns, so no batch waits longer."`
	TimeoutSecs              int                      `yaml:"timeout_secs" default:"30" min:"1" max:"300" doc:"Per-request timeout (seconds)."`
	SkipInvalidEvents        bool                     `yaml:"skip_invalid_events" default:"false" doc:"Skip events with missing or invalid vectors (counted in records.failed) instead of dead-lettering them."`
	MaxRetries               int                      `yaml:"max_retries" default:"3" min:"0" max:"100" doc:"Maximum retries on transient failures (0 to disable)."`
	InitialBackoffMs         int                      `yaml:"initial_backoff_ms" default:"200" min:"1" doc:"Initial retry backoff (ms)."`
	MaxBackoffMs             int                      `yaml:"max_backoff_ms" default:"5000" min:"1" doc:"Maximum retry backoff (ms)."`
	CircuitBreaker           vectorsink.BreakerConfig `yaml:"circuit_breaker" doc:"Circuit breaker of this sink instance."`
}

// Validate checks what spans keys.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	if c.IndexHost == "" && c.IndexName == "" {
		ps = append(ps, spec.Problem{Path: "index_host", Message: "set index_host, or index_name to resolve it through the control plane"})
	}
	if (c.SparseVectorIndicesField == "") != (c.SparseVectorValuesField == "") {
		ps = append(ps, spec.Problem{Path: "sparse_vector_indices_field", Message: "sparse_vector_indices_field and sparse_vector_values_field must be set together"})
	}
	if c.InitialBackoffMs > c.MaxBackoffMs {
		ps = append(ps, spec.Problem{Path: "initial_backoff_ms", Message: "initial_backoff_ms is above max_backoff_ms"})
	}
	return ps
}

func init() {
	catalog.RegisterSink[Config](catalog.Meta{
		Name: "pinecone", Category: catalog.AIML, Subcategory: "Vector Database",
		ConcurrentWrites: true,
		Description:      "Upserts event vectors (dense and sparse, with metadata) into a Pinecone index over gRPC; deletes on CDC deletes",
		Tags:             []string{"vector", "pinecone", "embedding", "rag", "grpc", "hybrid"},
		Metrics:          vectorsink.MetricNames("pinecone"),
	}, New)
}

// MaxMetadataBytes is Pinecone's documented limit of metadata per vector
// (40 KB).
const MaxMetadataBytes = 40 * 1024

// maxIDLength is Pinecone's limit on a vector ID.
const maxIDLength = 512

// DialOptions are added to the data plane's gRPC connection, and
// HTTPClient is the control plane's HTTP client (tests).
var (
	DialOptions []grpc.DialOption
	HTTPClient  *http.Client
)

// New builds the sink; the index host is resolved and the connection
// made at the first write or check.
func New(ctx context.Context, cfg *Config) (connector.Sink, error) {
	pc, err := pinecone.NewClient(pinecone.NewClientParams{ApiKey: cfg.APIKey, Host: cfg.ControlPlaneHost, RestClient: HTTPClient, SourceTag: "rivven_connect"})
	if err != nil {
		return nil, connector.Fatal(fmt.Errorf("pinecone: %w", err))
	}
	s := &sink{cfg: cfg, pc: pc}
	s.Sink = vectorsink.New(ctx, s, vectorsink.Options{
		Prefix: "pinecone", VectorField: cfg.VectorField,
		IDs:       vectorsink.IDs{Strategy: cfg.IDStrategy, Field: cfg.IDField, Exclude: []string{cfg.VectorField}},
		BatchSize: cfg.BatchSize, Timeout: time.Duration(cfg.TimeoutSecs) * time.Second, SkipInvalid: cfg.SkipInvalidEvents,
		MaxRetries: cfg.MaxRetries, InitialBackoff: time.Duration(cfg.InitialBackoffMs) * time.Millisecond,
		MaxBackoff: time.Duration(cfg.MaxBackoffMs) * time.Millisecond, Breaker: cfg.CircuitBreaker,
	})
	return s, nil
}

type sink struct {
	*vectorsink.Sink
	cfg *Config
	pc  *pinecone.Client

	mu  sync.Mutex
	idx *pinecone.IndexConnection
}

// Write connects (once), then writes.
func (s *sink) Write(ctx context.Context, batch []*events.Event) error {
	if err := s.connect(ctx); err != nil {
		return err
	}
	return s.Sink.Write(ctx, batch)
}

// Check resolves the index, connects and compares its dimension with the
// vectors it will get.
func (s *sink) Check(ctx context.Context) error { return s.connect(ctx) }

// Close closes the gRPC connection.
func (s *sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.idx != nil {
		return s.idx.Close()
	}
	return nil
}

func (s *sink) connect(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.idx != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.TimeoutSecs)*time.Second)
	defer cancel()
	host, dim := s.cfg.IndexHost, 0
	if s.cfg.IndexName != "" {
		ix, err := s.pc.DescribeIndex(ctx, s.cfg.IndexName)
		if err != nil {
			return classifyREST(err)
		}
		if host == "" {
			host = ix.Host
		}
		if ix.Dimension != nil {
			dim = int(*ix.Dimension)
		}
	}
	idx, err := s.pc.Index(pinecone.NewIndexConnParams{Host: host, Namespace: s.cfg.Namespace}, DialOptions...)
	if err != nil {
		return connector.Fatal(fmt.Errorf("pinecone: %w", err))
	}
	if dim == 0 {
		// Without a control plane answer, the data plane's stats say it.
		st, err := idx.DescribeIndexStats(ctx)
		if err != nil {
			_ = idx.Close()
			return classify(err)
		}
		if st.Dimension != nil {
			dim = int(*st.Dimension)
		}
	}
	s.idx = idx
	s.Sink.O.Dimension = dim
	return nil
}

// Prepare builds the vector: dense values, sparse values when configured,
// and metadata within Pinecone's 40 KB.
func (s *sink) Prepare(op *vectorsink.Op) error {
	if len(op.ID.Str) > maxIDLength {
		return fmt.Errorf("vector ID is %d characters, above Pinecone's %d", len(op.ID.Str), maxIDLength)
	}
	v := &pinecone.Vector{Id: op.ID.String(), Values: &op.Vector}
	if f := s.cfg.SparseVectorIndicesField; f != "" {
		iv, ok := vectorsink.Get(op.Row, f)
		if !ok {
			return fmt.Errorf("sparse indices field %q is missing", f)
		}
		idx, err := vectorsink.Uint32s(iv, f)
		if err != nil {
			return err
		}
		vv, ok := vectorsink.Get(op.Row, s.cfg.SparseVectorValuesField)
		if !ok {
			return fmt.Errorf("sparse values field %q is missing", s.cfg.SparseVectorValuesField)
		}
		vals, err := vectorsink.Float32s(vv, s.cfg.SparseVectorValuesField)
		if err != nil {
			return err
		}
		if len(idx) != len(vals) {
			return fmt.Errorf("sparse vector has %d indices and %d values; they must match", len(idx), len(vals))
		}
		v.SparseValues = &pinecone.SparseValues{Indices: idx, Values: vals}
	}
	md, err := s.metadata(op.Row)
	if err != nil {
		return err
	}
	if md != nil {
		if n := proto.Size(md); n > MaxMetadataBytes {
			return fmt.Errorf("metadata is %d bytes, above Pinecone's limit of %d bytes (40 KB) per vector; list fewer fields in metadata_fields", n, MaxMetadataBytes)
		}
		v.Metadata = md
	}
	op.Item = v
	return nil
}

// metadata maps row fields to Pinecone metadata, whose values are
// strings, numbers, booleans or lists of strings: nulls are left out (a
// null cannot be stored), other lists and objects are sent as their JSON
// text.
func (s *sink) metadata(r map[string]any) (*structpb.Struct, error) {
	fields := s.cfg.MetadataFields
	if fields == nil {
		for _, k := range vectorsink.SortedKeys(r) {
			switch k {
			case s.cfg.VectorField, s.cfg.SparseVectorIndicesField, s.cfg.SparseVectorValuesField, "__deleted":
				continue
			}
			fields = append(fields, k)
		}
	}
	m := map[string]*structpb.Value{}
	for _, f := range fields {
		v, ok := vectorsink.Get(r, f)
		if !ok || v == nil {
			continue
		}
		pv, err := metaValue(vectorsink.Plain(v))
		if err != nil {
			return nil, fmt.Errorf("metadata field %q: %w", f, err)
		}
		m[f] = pv
	}
	if len(m) == 0 {
		return nil, nil
	}
	return &structpb.Struct{Fields: m}, nil
}

func metaValue(v any) (*structpb.Value, error) {
	switch x := v.(type) {
	case string:
		return structpb.NewStringValue(x), nil
	case bool:
		return structpb.NewBoolValue(x), nil
	case int64:
		return structpb.NewNumberValue(float64(x)), nil
	case float64:
		return structpb.NewNumberValue(x), nil
	case []any:
		strs := make([]*structpb.Value, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return jsonText(v)
			}
			strs = append(strs, structpb.NewStringValue(s))
		}
		return structpb.NewListValue(&structpb.ListValue{Values: strs}), nil
	}
	return jsonText(v)
}

func jsonText(v any) (*structpb.Value, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return structpb.NewStringValue(string(b)), nil
}

// Upsert sends one batch of vectors.
func (s *sink) Upsert(ctx context.Context, ops []*vectorsink.Op) error {
	vs := make([]*pinecone.Vector, len(ops))
	for i, op := range ops {
		vs[i] = op.Item.(*pinecone.Vector)
	}
	_, err := s.idx.UpsertVectors(ctx, vs)
	return classify(err)
}

// Delete removes the vectors of deleted rows.
func (s *sink) Delete(ctx context.Context, ops []*vectorsink.Op) error {
	ids := make([]string, len(ops))
	for i, op := range ops {
		ids[i] = op.ID.String()
	}
	return classify(s.idx.DeleteVectorsById(ctx, ids))
}

func classify(err error) error { return vectorsink.FromGRPC("pinecone", err) }

// classifyREST classifies a control plane failure by its HTTP status.
func classifyREST(err error) error {
	var pe *pinecone.PineconeError
	if errors.As(err, &pe) {
		return resilience.FromHTTP(pe.Code, "", time.Now(), fmt.Errorf("pinecone: %w", err))
	}
	return fmt.Errorf("pinecone: %w", err)
}

// ConcurrentWrites: after the one-time connection (under mu), a Write's
// vectors are its own and the index connection is safe for concurrent
// use; upserts and deletes by ID are idempotent.
func (*sink) ConcurrentWrites() bool { return true }
