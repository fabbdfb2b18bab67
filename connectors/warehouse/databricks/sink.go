// Package databricks is the Databricks sink: rows streamed into a Unity
// Catalog Delta table through Zerobus Ingest, a gRPC service, with a
// client generated from Databricks' published protobuf definitions
// (zerobuspb), OAuth 2.0 client credentials against the workspace, stream
// recovery, and a batch acknowledged to the trigger only after Zerobus
// acknowledged its offset as durable.
package databricks

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/metric"
	"github.com/rivven/rivven-connect/shared/resilience"

	pb "github.com/rivven/rivven-connect/connectors/warehouse/databricks/zerobuspb"
)

// The reference's metrics, and two it promises in words: bytes written
// ("byte-level throughput tracking") and stream recoveries.
const (
	metricBatchesOK    = "databricks.batches.success"
	metricBatchesBad   = "databricks.batches.failed"
	metricRetried      = "databricks.batches.retried"
	metricWritten      = "databricks.records.written"
	metricFailed       = "databricks.records.failed"
	metricSerialErrors = "databricks.records.serialization_errors"
	metricAcksOK       = "databricks.acks.success"
	metricAcksErr      = "databricks.acks.error"
	metricRejected     = "databricks.circuit_breaker.rejected"
	metricBatchSize    = "databricks.batch.size"
	metricBatchMs      = "databricks.batch.duration_ms"
	metricAckMs        = "databricks.ack.duration_ms"
	metricBytes        = "databricks.bytes.written"
	metricRecoveries   = "databricks.stream.recoveries"
)

func init() {
	catalog.RegisterSink[Config](catalog.Meta{
		Name:        "databricks",
		Category:    catalog.Warehouse,
		Description: "Streams rows into a Databricks Unity Catalog Delta table through Zerobus Ingest (gRPC, JSON or protobuf records from the table's schema), with OAuth 2.0 client credentials, stream recovery, and a batch acknowledged only after Zerobus acknowledged its offset; bad rows to the dead-letter topic with column and reason; AWS, Azure and GCP workspaces.",
		Tags:        []string{"databricks", "zerobus", "warehouse", "lakehouse", "delta", "unity-catalog", "grpc"},
		Metrics: []string{metricBatchesOK, metricBatchesBad, metricRetried, metricWritten, metricFailed, metricSerialErrors,
			metricAcksOK, metricAcksErr, metricRejected, metricBatchSize, metricBatchMs, metricAckMs, metricBytes, metricRecoveries},
	}, func(ctx context.Context, c *Config) (connector.Sink, error) { return New(ctx, c) })
}

type metrics struct {
	okB, badB, retried, written, failed, serial, acksOK, acksErr, rejected, bytes, recoveries *metric.Counter
	size                                                                                      *metric.Gauge
	batchDuration, ackDuration                                                                *metric.Histogram
}

// Sink writes to one table.
type Sink struct {
	cfg       Config
	ep        endpointInfo
	workspace string
	conn      *grpc.ClientConn
	httpc     *http.Client
	ingestTok *tokens
	schemaTok *tokens
	policy    resilience.Policy
	br        *resilience.Circuit
	m         *metrics
	rt        *connector.Runtime

	mu     sync.Mutex
	schema *tableSchema
	in     *ingester

	buf  bytes.Buffer
	vals []value
}

// Option changes how the sink reaches the service (tests).
type Option func(*options)

type options struct {
	httpClient *http.Client
	dial       []grpc.DialOption
}

// WithHTTPClient sets the client for the token endpoint and the Unity
// Catalog API.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.httpClient = c } }

// WithDialOptions adds gRPC dial options.
func WithDialOptions(d ...grpc.DialOption) Option {
	return func(o *options) { o.dial = append(o.dial, d...) }
}

// New builds the sink; it contacts the workspace on Check or the first
// Write.
func New(ctx context.Context, cfg *Config, opts ...Option) (*Sink, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	ep, err := parseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, connector.Fatal(fmt.Errorf("endpoint: %w", err))
	}
	_, ws, err := parseWorkspaceURL(cfg.UnityCatalogURL)
	if err != nil {
		return nil, connector.Fatal(fmt.Errorf("unity_catalog_url: %w", err))
	}
	if o.httpClient == nil {
		o.httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	creds := credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	if ep.plaintext {
		creds = insecure.NewCredentials()
	}
	dial := append([]grpc.DialOption{grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20), grpc.MaxCallRecvMsgSize(64<<20))}, o.dial...)
	conn, err := grpc.NewClient("dns:///"+ep.target, dial...)
	if err != nil {
		return nil, connector.Fatal(fmt.Errorf("endpoint: %w", err))
	}
	it, err := ingestTokens(ws, ep.workspaceID, cfg.TableName, cfg.ClientID, cfg.ClientSecret, o.httpClient)
	if err != nil {
		return nil, connector.Fatal(fmt.Errorf("table_name: %w", err))
	}
	rt := connector.RuntimeFrom(ctx)
	s := &Sink{cfg: *cfg, ep: ep, workspace: ws, conn: conn, httpc: o.httpClient, rt: rt,
		ingestTok: it,
		schemaTok: newTokens(ws, cfg.ClientID, cfg.ClientSecret, nil, o.httpClient),
		policy: resilience.Policy{MaxRetries: cfg.MaxBatchRetries, Initial: time.Duration(cfg.InitialBackoffMs) * time.Millisecond,
			Max: time.Duration(cfg.MaxBackoffMs) * time.Millisecond, Multiplier: 2, Jitter: 0.2},
		m: &metrics{
			okB:           rt.Counter(metricBatchesOK, "Batches ingested and acknowledged."),
			badB:          rt.Counter(metricBatchesBad, "Failed batch ingestions (after retries and recovery)."),
			retried:       rt.Counter(metricRetried, "Batch retry attempts."),
			written:       rt.Counter(metricWritten, "Records written."),
			failed:        rt.Counter(metricFailed, "Records failed (dead-lettered, or in a failed batch)."),
			serial:        rt.Counter(metricSerialErrors, "Rows that could not be converted to the table's columns (dead-lettered)."),
			acksOK:        rt.Counter(metricAcksOK, "Batches whose offset the server acknowledged as durable."),
			acksErr:       rt.Counter(metricAcksErr, "Batches whose acknowledgement failed (stream failed and not recovered)."),
			rejected:      rt.Counter(metricRejected, "Batches rejected by the open circuit breaker."),
			bytes:         rt.Counter(metricBytes, "Record bytes written (JSON text or protobuf encoding)."),
			recoveries:    rt.Counter(metricRecoveries, "Streams recovered after a failure."),
			size:          rt.Gauge(metricBatchSize, "Records in the last batch."),
			batchDuration: rt.Histogram(metricBatchMs, "Milliseconds a batch took end to end (encoding, sending, acknowledgement).", metric.LatencyMillis),
			ackDuration:   rt.Histogram(metricAckMs, "Milliseconds between sending a batch and its acknowledgement.", metric.LatencyMillis),
		},
	}
	s.br = resilience.NewCircuit(resilience.CircuitConfig(cfg.CircuitBreaker)) // nil when disabled
	return s, nil
}

// BatchPolicy asks long-lived runners for batches of batch_size events.
func (s *Sink) BatchPolicy() (int, time.Duration) {
	return s.cfg.BatchSize, time.Duration(s.cfg.FlushIntervalSecs) * time.Second
}

// Check gets both tokens, reads the table's schema and opens a stream
// (which checks the ingest token and the table with Zerobus).
func (s *Sink) Check(ctx context.Context) error {
	in, _, err := s.ready(ctx)
	if err != nil {
		return fmt.Errorf("databricks: %w", err)
	}
	if _, err := in.stream(ctx); err != nil {
		return fmt.Errorf("databricks: %w", err)
	}
	return nil
}

// ready reads the table's schema (once) and builds the ingester.
func (s *Sink) ready(ctx context.Context) (*ingester, *tableSchema, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.in != nil {
		return s.in, s.schema, nil
	}
	tok, err := s.schemaTok.get(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("oauth token from %s: %w", s.workspace, err)
	}
	var table struct {
		Columns []ucColumn `json:"columns"`
	}
	u := s.workspace + "/api/2.1/unity-catalog/tables/" + url.PathEscape(s.cfg.TableName)
	if err := getJSON(ctx, s.httpc, u, tok, &table); err != nil {
		if classify(err) == classAuth {
			s.schemaTok.drop()
		}
		return nil, nil, fmt.Errorf("table %s: %w", s.cfg.TableName, err)
	}
	sc, err := newSchema(s.cfg.TableName, table.Columns, s.cfg.RecordType == "proto")
	if err != nil {
		return nil, nil, classifiedAs(classFatal, fmt.Errorf("table %s: %w", s.cfg.TableName, err))
	}
	rt := pb.RecordType_JSON
	if s.cfg.RecordType == "proto" {
		rt = pb.RecordType_PROTO
	}
	s.schema = sc
	s.in = newIngester(&s.cfg, s.conn, s.cfg.TableName, rt, sc.descriptor, s.ingestTok.get, s.ingestTok.drop, s.m, s.rt.Logger())
	return s.in, sc, nil
}

// Write sends the batch's rows as one Zerobus batch and, with
// wait_for_ack, returns once the server acknowledged its offset. Rows
// that do not fit the table go to the dead-letter topic with the column
// and reason; the rest are written.
func (s *Sink) Write(ctx context.Context, batch []*events.Event) error {
	start := time.Now()
	if !s.br.Allow() {
		s.m.rejected.Inc()
		s.m.failed.Add(uint64(len(batch)))
		return resilience.Errorf(resilience.Connection, "databricks: circuit breaker open after %d consecutive failures", s.cfg.CircuitBreaker.FailureThreshold)
	}
	in, sc, err := s.ready(ctx)
	if err != nil {
		s.finish(false, len(batch))
		return fmt.Errorf("databricks: %w", err)
	}
	req, n, size, failed := s.encode(sc, batch)
	s.m.size.Set(float64(n))
	if n > 0 {
		err := resilience.Do(ctx, s.policy, func(ctx context.Context) error {
			return s.ingest(ctx, in, req, n)
		}, resilience.OnRetry(func(_ int, err error, _ time.Duration) {
			s.m.retried.Inc()
			s.rt.Logger().Warn("databricks: retrying batch", "error", err)
		}))
		if err != nil {
			s.finish(false, len(batch))
			return fmt.Errorf("databricks: ingest into %s: %w", s.cfg.TableName, err)
		}
		s.m.bytes.Add(uint64(size))
	}
	s.finish(true, 0)
	s.m.written.Add(uint64(n))
	s.m.batchDuration.Observe(float64(time.Since(start).Milliseconds()))
	if len(failed) > 0 {
		s.m.failed.Add(uint64(len(failed)))
		return &connector.WriteError{Failed: failed}
	}
	return nil
}

func (s *Sink) finish(ok bool, failedRecords int) {
	s.br.Done(ok)
	if ok {
		s.m.okB.Inc()
		return
	}
	s.m.badB.Inc()
	s.m.failed.Add(uint64(failedRecords))
}

// ingest is one attempt: room under max_inflight_requests, send, and
// with wait_for_ack the acknowledgement, all within flush_timeout_ms.
func (s *Sink) ingest(ctx context.Context, in *ingester, req *pb.IngestRecordBatchRequest, n int) error {
	deadline := time.NewTimer(time.Duration(s.cfg.FlushTimeoutMs) * time.Millisecond)
	defer deadline.Stop()
	if err := in.reserve(ctx, n, deadline.C); err != nil {
		return err
	}
	p := &pending{batch: req, n: n, done: make(chan struct{})}
	if err := in.send(ctx, p); err != nil {
		return err
	}
	if !s.cfg.WaitForAck {
		return nil
	}
	return in.wait(ctx, p, deadline.C)
}

// encode converts the batch's rows to records. Events without a row to
// append (deletes, schema, state, log) are skipped.
func (s *Sink) encode(sc *tableSchema, batch []*events.Event) (*pb.IngestRecordBatchRequest, int, int, map[int]error) {
	var failed map[int]error
	var jsonRecs []string
	var protoRecs [][]byte
	size := 0
	for i, e := range batch {
		if !e.Type.IsData() || e.Type == events.Delete {
			continue
		}
		row, err := e.After()
		if err == nil && row == nil {
			err = errors.New("event has no row")
		}
		if err == nil {
			s.vals, err = sc.rowValues(row, s.vals)
		}
		if err != nil {
			if failed == nil {
				failed = map[int]error{}
			}
			failed[i] = err
			s.m.serial.Inc()
			continue
		}
		if s.cfg.RecordType == "proto" {
			b := sc.appendProto(nil, s.vals)
			size += len(b)
			protoRecs = append(protoRecs, b)
			continue
		}
		s.buf.Reset()
		sc.appendJSON(&s.buf, s.vals)
		size += s.buf.Len()
		jsonRecs = append(jsonRecs, s.buf.String())
	}
	req := &pb.IngestRecordBatchRequest{}
	if s.cfg.RecordType == "proto" {
		req.Batch = &pb.IngestRecordBatchRequest_ProtoEncodedBatch{ProtoEncodedBatch: &pb.ProtoEncodedRecordBatch{Records: protoRecs}}
		return req, len(protoRecs), size, failed
	}
	req.Batch = &pb.IngestRecordBatchRequest_JsonBatch{JsonBatch: &pb.JsonRecordBatch{Records: jsonRecs}}
	return req, len(jsonRecs), size, failed
}

// Close waits (up to flush_timeout_ms) for every batch in flight to be
// acknowledged, then closes the streams.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	in := s.in
	s.mu.Unlock()
	var err error
	if in != nil {
		err = in.close(ctx)
	}
	if cerr := s.conn.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("databricks: %w", err)
	}
	return nil
}
