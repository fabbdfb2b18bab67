// Package bigquery is the BigQuery sink: events appended to one table
// through the BigQuery Storage Write API (managedwriter), rows encoded as
// protobuf from the table's schema (the adapt package), either on the
// table's default stream (at least once) or on a committed stream at
// explicit offsets (exactly once). It never uses the legacy insertAll.
package bigquery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	bq "cloud.google.com/go/bigquery"
	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	"cloud.google.com/go/bigquery/storage/managedwriter"
	"cloud.google.com/go/bigquery/storage/managedwriter/adapt"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/metric"
	"github.com/rivven/rivven-connect/shared/resilience"
)

const (
	metricBatchesOK  = "bigquery.batches.success"
	metricBatchesBad = "bigquery.batches.failed"
	metricRetried    = "bigquery.batches.retried"
	metricWritten    = "bigquery.records.written"
	metricFailed     = "bigquery.records.failed"
	metricDuplicates = "bigquery.records.duplicates"
	metricBytes      = "bigquery.bytes.written"
	metricBatchSize  = "bigquery.batch.size"
	metricDuration   = "bigquery.batch.duration_ms"
	metricRejected   = "bigquery.circuit_breaker.rejected"
)

// maxRequestBytes keeps an AppendRows request under the service's 10 MB
// (a variable for tests).
var maxRequestBytes = 9 << 20

func init() {
	catalog.RegisterSink[Config](catalog.Meta{
		Name:        "bigquery",
		Category:    catalog.Warehouse,
		Description: "Appends events to a BigQuery table through the Storage Write API: rows as protobuf from the table's schema (every BigQuery type, nested and repeated), the default stream for at-least-once or a committed stream at explicit offsets for exactly-once; optional table creation from the first batch; rows that do not convert go to the dead-letter topic with the column and reason.",
		Tags:        []string{"bigquery", "gcp", "google-cloud", "warehouse", "storage-write-api", "exactly-once"},
		Metrics:     []string{metricBatchesOK, metricBatchesBad, metricRetried, metricWritten, metricFailed, metricDuplicates, metricBytes, metricBatchSize, metricDuration, metricRejected},
	}, func(ctx context.Context, c *Config) (connector.Sink, error) { return New(ctx, c) })
}

// Sink appends to one table.
type Sink struct {
	cfg    Config
	policy resilience.Policy
	br     *resilience.Circuit // nil when circuit_breaker.enabled is false
	state  connector.State
	log    func(msg string, args ...any)
	extra  []option.ClientOption // tests: options for both clients

	// life is the context the write stream's connections live in (the
	// managedwriter keeps the one it is opened with); Close ends it.
	life   context.Context
	cancel context.CancelFunc

	mu     sync.Mutex // one Write at a time; guards everything below
	bqc    *bq.Client
	mwc    *managedwriter.Client
	tbl    *tableInfo
	stream *managedwriter.ManagedStream
	// streamDP is the descriptor the stream's appends are in; when the
	// table's differs (its schema was read again), the next append
	// carries the new one.
	streamDP *descriptorpb.DescriptorProto
	once     *onceState // exactly_once: where the next batch goes

	okB, badB, retried, written, failed, dups, bytes, rejected *metric.Counter
	size                                                       *metric.Gauge
	duration                                                   *metric.Histogram
}

// tableInfo is the table's schema as the Storage Write API needs it.
type tableInfo struct {
	fields []*storagepb.TableFieldSchema
	md     protoreflect.MessageDescriptor
	dp     *descriptorpb.DescriptorProto
}

// New builds the sink; it contacts BigQuery on Check or the first Write.
func New(ctx context.Context, cfg *Config) (*Sink, error) {
	rt := connector.RuntimeFrom(ctx)
	life, cancel := context.WithCancel(context.Background())
	s := &Sink{cfg: *cfg, state: rt.State, life: life, cancel: cancel,
		log: rt.Logger().Warn,
		policy: resilience.Policy{MaxRetries: cfg.Retry.MaxRetries, Initial: time.Duration(cfg.Retry.InitialBackoffMs) * time.Millisecond,
			Max: time.Duration(cfg.Retry.MaxBackoffMs) * time.Millisecond, Multiplier: cfg.Retry.BackoffMultiplier, Jitter: cfg.Retry.JitterFactor},
		okB:      rt.Counter(metricBatchesOK, "Successfully appended batches."),
		badB:     rt.Counter(metricBatchesBad, "Failed batch appends (after all retries)."),
		retried:  rt.Counter(metricRetried, "Append retry attempts."),
		written:  rt.Counter(metricWritten, "Records appended."),
		failed:   rt.Counter(metricFailed, "Records failed (dead-lettered: they do not convert or the service refused them)."),
		dups:     rt.Counter(metricDuplicates, "Redelivered records recognized as already written (exactly_once) and not appended again."),
		bytes:    rt.Counter(metricBytes, "Bytes of serialized protobuf rows appended."),
		size:     rt.Gauge(metricBatchSize, "Rows in the last batch."),
		duration: rt.Histogram(metricDuration, "Milliseconds a batch took end to end.", metric.LatencyMillis),
		rejected: rt.Counter(metricRejected, "Batches rejected by the open circuit breaker."),
		br:       resilience.NewCircuit(cfg.CircuitBreaker),
	}
	if err := s.policy.Validate(); err != nil {
		return nil, connector.Fatal(err)
	}
	if cfg.Delivery == "exactly_once" && s.state == nil {
		rt.Logger().Warn("bigquery: exactly_once without a state store: the committed stream's position is kept in memory, so a batch redelivered after a restart is written again")
	}
	return s, nil
}

// BatchPolicy asks long-lived runners for batches of batch_size events.
func (s *Sink) BatchPolicy() (int, time.Duration) {
	return s.cfg.BatchSize, time.Duration(s.cfg.FlushIntervalSecs) * time.Second
}

func (s *Sink) tablePath() string {
	return managedwriter.TableParentFromParts(s.cfg.ProjectID, s.cfg.Dataset, s.cfg.Table)
}

// credentials returns the credentials option; nil for the default chain.
func (s *Sink) credentials() (option.ClientOption, error) {
	switch {
	case s.cfg.CredentialsJSON != "":
		return option.WithAuthCredentialsJSON(option.ServiceAccount, []byte(s.cfg.CredentialsJSON)), nil
	case s.cfg.CredentialsPath != "":
		b, err := os.ReadFile(s.cfg.CredentialsPath)
		if err != nil {
			return nil, fmt.Errorf("credentials_path: %w", err)
		}
		var head struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(b, &head) != nil || head.Type != "service_account" {
			return nil, fmt.Errorf("credentials_path: %s is not a service-account JSON key", s.cfg.CredentialsPath)
		}
		return option.WithAuthCredentialsFile(option.ServiceAccount, s.cfg.CredentialsPath), nil
	}
	return nil, nil
}

// connect makes the REST client (table metadata) and the Storage Write
// client. s.mu is held.
func (s *Sink) connect(ctx context.Context) error {
	if s.mwc != nil {
		return nil
	}
	cred, err := s.credentials()
	if err != nil {
		return connector.Fatal(err)
	}
	var rest, write []option.ClientOption
	if cred != nil {
		rest, write = append(rest, cred), append(write, cred)
	}
	if s.cfg.APIEndpoint != "" {
		rest = append(rest, option.WithEndpoint(s.cfg.APIEndpoint))
		if cred == nil {
			rest = append(rest, option.WithoutAuthentication())
		}
	}
	if s.cfg.StorageEndpoint != "" {
		write = append(write, option.WithEndpoint(s.cfg.StorageEndpoint))
		if cred == nil {
			write = append(write, option.WithoutAuthentication(),
				option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
		}
	}
	rest, write = append(rest, s.extra...), append(write, s.extra...)
	bqc, err := bq.NewClient(ctx, s.cfg.ProjectID, rest...)
	if err != nil {
		return connector.Fatal(fmt.Errorf("bigquery client: %w", err))
	}
	mwc, err := managedwriter.NewClient(s.life, s.cfg.ProjectID, write...)
	if err != nil {
		bqc.Close()
		return connector.Fatal(fmt.Errorf("storage write client: %w", err))
	}
	s.bqc, s.mwc = bqc, mwc
	return nil
}

// Check verifies the table exists with a schema the sink can write (or
// may be created), and that the Storage Write API answers for it.
func (s *Sink) Check(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.connect(ctx); err != nil {
		return fmt.Errorf("bigquery: %w", err)
	}
	if _, err := s.loadTable(ctx, nil); err != nil {
		if s.cfg.CreateTable && resilience.ClassOf(err) == resilience.NotFound {
			return nil // created from the first batch
		}
		return fmt.Errorf("bigquery: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	if _, err := s.mwc.GetWriteStream(cctx, &storagepb.GetWriteStreamRequest{Name: s.tablePath() + "/streams/_default"}); err != nil {
		return fmt.Errorf("bigquery: storage write API for %s: %w", s.tablePath(), classify(err))
	}
	return nil
}

func (s *Sink) timeout() time.Duration { return time.Duration(s.cfg.RequestTimeout) * time.Second }

// loadTable reads the table's schema; with create_table and rows it
// creates a missing table from them. s.mu is held.
func (s *Sink) loadTable(ctx context.Context, rows []map[string]any) (*tableInfo, error) {
	if s.tbl != nil {
		return s.tbl, nil
	}
	t := s.bqc.Dataset(s.cfg.Dataset).Table(s.cfg.Table)
	mctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	md, err := t.Metadata(mctx)
	if err != nil && isHTTP(err, http.StatusNotFound) {
		if !s.cfg.CreateTable || rows == nil {
			return nil, resilience.New(resilience.NotFound, fmt.Errorf("table %s.%s.%s does not exist (create_table: %v)", s.cfg.ProjectID, s.cfg.Dataset, s.cfg.Table, s.cfg.CreateTable))
		}
		schema, ierr := inferSchema(rows, s.cfg.OperationColumn)
		if ierr != nil {
			return nil, ierr
		}
		if err = t.Create(mctx, &bq.TableMetadata{Schema: schema, Description: "created by rivven-connect from the first batch"}); err != nil && !isHTTP(err, http.StatusConflict) {
			return nil, fmt.Errorf("create table %s.%s: %w", s.cfg.Dataset, s.cfg.Table, classifyHTTP(err))
		}
		md, err = t.Metadata(mctx)
	}
	if err != nil {
		return nil, fmt.Errorf("table %s.%s: %w", s.cfg.Dataset, s.cfg.Table, classifyHTTP(err))
	}
	if md.Type != "" && md.Type != bq.RegularTable {
		return nil, connector.Fatal(fmt.Errorf("%s.%s is a %s, not a table", s.cfg.Dataset, s.cfg.Table, md.Type))
	}
	ts, err := adapt.BQSchemaToStorageTableSchema(md.Schema)
	if err != nil {
		return nil, connector.Fatal(fmt.Errorf("table schema: %w", err))
	}
	desc, err := adapt.StorageSchemaToProto2Descriptor(ts, "root")
	if err != nil {
		return nil, connector.Fatal(fmt.Errorf("table schema: %w", err))
	}
	mdesc, ok := desc.(protoreflect.MessageDescriptor)
	if !ok {
		return nil, connector.Fatal(errors.New("table schema: no message descriptor"))
	}
	dp, err := adapt.NormalizeDescriptor(mdesc)
	if err != nil {
		return nil, connector.Fatal(fmt.Errorf("table schema: %w", err))
	}
	if c := s.cfg.OperationColumn; c != "" {
		var found *storagepb.TableFieldSchema
		for _, f := range ts.GetFields() {
			if strings.EqualFold(f.GetName(), c) {
				found = f
			}
		}
		if found == nil || found.GetType() != storagepb.TableFieldSchema_STRING || found.GetMode() == storagepb.TableFieldSchema_REPEATED {
			return nil, connector.Fatal(fmt.Errorf("operation_column: table %s.%s has no STRING column %s", s.cfg.Dataset, s.cfg.Table, c))
		}
	}
	s.tbl = &tableInfo{fields: ts.GetFields(), md: mdesc, dp: dp}
	return s.tbl, nil
}

// inferSchema is a new table's schema: every field with a non-null
// value in rows, in name order.
func inferSchema(rows []map[string]any, opCol string) (bq.Schema, error) {
	types := map[string]bq.FieldType{}
	for _, r := range rows {
		for k, v := range r {
			t := inferType(v)
			if t == "" {
				continue
			}
			if cur, ok := types[k]; ok && cur != t {
				if (cur == bq.IntegerFieldType && t == bq.FloatFieldType) || (cur == bq.FloatFieldType && t == bq.IntegerFieldType) {
					t = bq.FloatFieldType
				} else {
					t = cur // later rows that disagree are dead-lettered
				}
			}
			types[k] = t
		}
	}
	if opCol != "" {
		types[opCol] = bq.StringFieldType
	}
	if len(types) == 0 {
		return nil, resilience.New(resilience.Schema, errors.New("cannot create the table: no row of the batch has a non-null field"))
	}
	names := make([]string, 0, len(types))
	for n := range types {
		if !columnRE.MatchString(n) {
			return nil, resilience.New(resilience.Schema, fmt.Errorf("cannot create the table: field %q is not a BigQuery column name", n))
		}
		names = append(names, n)
	}
	sort.Strings(names)
	schema := make(bq.Schema, len(names))
	for i, n := range names {
		schema[i] = &bq.FieldSchema{Name: n, Type: types[n]}
	}
	return schema, nil
}

func inferType(v any) bq.FieldType {
	switch x := v.(type) {
	case nil:
		return ""
	case bool:
		return bq.BooleanFieldType
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return bq.IntegerFieldType
		}
		return bq.FloatFieldType
	case float64:
		return bq.FloatFieldType
	case int, int64:
		return bq.IntegerFieldType
	case string:
		return bq.StringFieldType
	}
	return bq.JSONFieldType
}

func isHTTP(err error, code int) bool {
	var ge *googleapi.Error
	return errors.As(err, &ge) && ge.Code == code
}

// classifyHTTP gives a REST error its resilience class.
func classifyHTTP(err error) error {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return resilience.FromHTTP(ge.Code, ge.Header.Get("Retry-After"), time.Now(), err)
	}
	return resilience.New(resilience.Connection, err)
}

// classify gives a gRPC error its resilience class, after the service's
// documented retry guidance.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return resilience.New(resilience.Timeout, err)
	}
	st, ok := status.FromError(err)
	if !ok {
		return resilience.New(resilience.Connection, err)
	}
	switch st.Code() {
	case codes.Unavailable, codes.Internal, codes.Aborted, codes.Canceled, codes.Unknown:
		return resilience.New(resilience.Connection, err)
	case codes.DeadlineExceeded:
		return resilience.New(resilience.Timeout, err)
	case codes.ResourceExhausted:
		return resilience.New(resilience.RateLimited, err)
	case codes.Unauthenticated, codes.PermissionDenied:
		return resilience.New(resilience.Auth, err)
	case codes.NotFound:
		return resilience.New(resilience.NotFound, err)
	case codes.InvalidArgument, codes.FailedPrecondition:
		return resilience.New(resilience.Schema, err)
	}
	return resilience.New(resilience.Fatal, err)
}

// openStream opens the write stream: the default stream, or the committed
// stream named (created when name is ""). s.mu is held.
func (s *Sink) openStream(ctx context.Context, ti *tableInfo, name string) (*managedwriter.ManagedStream, error) {
	opts := []managedwriter.WriterOption{managedwriter.WithSchemaDescriptor(ti.dp), managedwriter.EnableWriteRetries(true)}
	switch {
	case s.cfg.Delivery != "exactly_once":
		opts = append(opts, managedwriter.WithDestinationTable(s.tablePath()), managedwriter.WithType(managedwriter.DefaultStream))
	case name != "":
		opts = append(opts, managedwriter.WithStreamName(name))
	default:
		opts = append(opts, managedwriter.WithDestinationTable(s.tablePath()), managedwriter.WithType(managedwriter.CommittedStream))
	}
	// The stream keeps the context it is opened with for its
	// connections: the sink's lifetime, not this call's.
	ms, err := s.mwc.NewManagedStream(s.life, opts...)
	if err != nil {
		return nil, classify(err)
	}
	s.streamDP = ti.dp
	return ms, nil
}

// Write appends the batch. Events that do not convert are left out and
// reported; the rest are appended in one request (or several, in order,
// when over 9 MB). While the circuit breaker is open it fails at once.
func (s *Sink) Write(ctx context.Context, batch []*events.Event) error {
	if !s.br.Allow() {
		s.rejected.Inc()
		return resilience.New(resilience.Connection, fmt.Errorf("bigquery: %w", resilience.ErrOpen))
	}
	err := s.write(ctx, batch)
	// Rows dead-lettered by a WriteError are the data's fault, not the
	// service's: the batch itself went through.
	var we *connector.WriteError
	s.br.Done(err == nil || errors.As(err, &we))
	return err
}

func (s *Sink) write(ctx context.Context, batch []*events.Event) error {
	start := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.connect(ctx); err != nil {
		return fmt.Errorf("bigquery: %w", err)
	}
	rows, idx, failed := s.rowsOf(batch)
	ti, err := s.loadTable(ctx, rows)
	if err != nil {
		s.badB.Inc()
		return fmt.Errorf("bigquery: %w", err)
	}
	var ids []string
	if s.cfg.Delivery == "exactly_once" {
		if err := s.resolve(ctx, ti); err != nil {
			s.badB.Inc()
			return fmt.Errorf("bigquery: %w", err)
		}
		ids = make([]string, len(idx))
		for k, i := range idx {
			ids[k] = deliveryID(batch[i])
		}
		keep := idx[:0:0]
		keptRows := rows[:0:0]
		keptIDs := ids[:0:0]
		for k, i := range idx {
			if ids[k] != "" && s.once.seen[ids[k]] {
				s.dups.Inc()
				continue
			}
			keep, keptRows, keptIDs = append(keep, i), append(keptRows, rows[k]), append(keptIDs, ids[k])
		}
		idx, rows, ids = keep, keptRows, keptIDs
	}
	enc := make([][]byte, 0, len(rows))
	encIdx := make([]int, 0, len(rows))
	encIDs := make([]string, 0, len(rows))
	var nbytes int
	for k, row := range rows {
		msg, err := encodeRow(ti.md, ti.fields, row, "")
		if err == nil {
			var b []byte
			if b, err = proto.Marshal(msg); err == nil {
				enc, encIdx = append(enc, b), append(encIdx, idx[k])
				if ids != nil {
					encIDs = append(encIDs, ids[k])
				}
				nbytes += len(b)
				continue
			}
		}
		failed[idx[k]] = resilience.New(resilience.Schema, fmt.Errorf("bigquery: %w", err))
	}
	s.size.Set(float64(len(enc)))
	if len(enc) > 0 {
		var refused map[int]error
		if s.cfg.Delivery == "exactly_once" {
			refused, err = s.appendOnce(ctx, ti, enc, encIDs)
		} else {
			refused, err = s.appendDefault(ctx, ti, enc)
		}
		for k, e := range refused {
			failed[encIdx[k]] = e
			nbytes -= len(enc[k])
		}
		if len(refused) > 0 || resilience.ClassOf(err) == resilience.Schema {
			// The table is not what the sink read: read it again.
			s.tbl = nil
		}
		if err != nil {
			s.badB.Inc()
			return fmt.Errorf("bigquery: append to %s.%s: %w", s.cfg.Dataset, s.cfg.Table, err)
		}
		s.written.Add(uint64(len(enc) - len(refused)))
		s.bytes.Add(uint64(nbytes))
	}
	s.okB.Inc()
	s.duration.Observe(float64(time.Since(start).Microseconds()) / 1000)
	if len(failed) == 0 {
		return nil
	}
	s.failed.Add(uint64(len(failed)))
	return &connector.WriteError{Failed: failed}
}

// rowsOf picks each event's row: the after image (the before image of a
// delete with deletes: write), with operation_column set. idx maps a row
// to its event; failed holds events without a usable row.
func (s *Sink) rowsOf(batch []*events.Event) (rows []map[string]any, idx []int, failed map[int]error) {
	failed = map[int]error{}
	for i, e := range batch {
		if !e.Type.IsData() {
			continue
		}
		var row map[string]any
		var err error
		if e.Type == events.Delete {
			if s.cfg.Deletes != "write" {
				continue
			}
			row, err = e.Before()
		} else {
			row, err = e.After()
		}
		if err != nil || row == nil {
			failed[i] = resilience.New(resilience.Schema, fmt.Errorf("bigquery: %s event without a row: %v", e.Type, err))
			continue
		}
		if c := s.cfg.OperationColumn; c != "" {
			cp := make(map[string]any, len(row)+1)
			for k, v := range row {
				cp[k] = v
			}
			cp[c] = string(e.Type)
			row = cp
		}
		rows, idx = append(rows, row), append(idx, i)
	}
	return rows, idx, failed
}

// deliveryID names the record an event came from across redeliveries;
// "" when no trigger delivered it (it is then never redelivered).
func deliveryID(e *events.Event) string {
	d := e.Delivered
	if d == nil {
		return ""
	}
	if d.HasOffset {
		return fmt.Sprintf("%s/%d/%d", d.Topic, d.Partition, d.Offset)
	}
	if d.ID == "" {
		return ""
	}
	return d.Topic + "/" + d.ID
}

// appendDefault appends to the default stream with retries; the service
// may then hold a batch twice (at least once).
func (s *Sink) appendDefault(ctx context.Context, ti *tableInfo, rows [][]byte) (map[int]error, error) {
	if s.stream == nil {
		ms, err := s.openStream(ctx, ti, "")
		if err != nil {
			return nil, err
		}
		s.stream = ms
	}
	refused := map[int]error{}
	for _, ch := range chunks(rows) {
		live, pos := liveRows(rows[ch[0]:ch[1]], refused, ch[0])
		for len(live) > 0 {
			bad, err := s.send(ctx, live, -1)
			if err != nil {
				return refused, err
			}
			if len(bad) == 0 {
				break
			}
			// The service refused the request for these rows: report
			// them, send the rest again.
			for k, e := range bad {
				refused[pos[k]] = e
			}
			live, pos = liveRows(rows[ch[0]:ch[1]], refused, ch[0])
		}
	}
	return refused, nil
}

// liveRows returns the rows of a chunk not refused, and their indexes.
func liveRows(chunk [][]byte, refused map[int]error, base int) ([][]byte, []int) {
	var out [][]byte
	var pos []int
	for k, r := range chunk {
		if _, bad := refused[base+k]; !bad {
			out, pos = append(out, r), append(pos, base+k)
		}
	}
	return out, pos
}

// chunks splits rows into [from, to) ranges of at most maxRequestBytes.
func chunks(rows [][]byte) [][2]int {
	var out [][2]int
	from, size := 0, 0
	for i, r := range rows {
		if i > from && size+len(r)+8 > maxRequestBytes {
			out = append(out, [2]int{from, i})
			from, size = i, 0
		}
		size += len(r) + 8
	}
	if from < len(rows) {
		out = append(out, [2]int{from, len(rows)})
	}
	return out
}

// errAlreadyExists and errOutOfRange are the service's answers to an
// append at an offset already written and past the stream's end.
var (
	errAlreadyExists = errors.New("offset already written")
	errOutOfRange    = errors.New("offset past the end of the stream")
)

// send appends rows (at offset unless it is -1) with retries. It returns
// the rows the service refused by index (then nothing was written), or
// errAlreadyExists / errOutOfRange for an offset the stream has or has
// not reached, or the failure.
func (s *Sink) send(ctx context.Context, rows [][]byte, offset int64, extra ...managedwriter.AppendOption) (map[int]error, error) {
	var bad map[int]error
	err := resilience.Do(ctx, s.policy, func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, s.timeout())
		defer cancel()
		opts := extra
		var newDP *descriptorpb.DescriptorProto
		if len(extra) == 0 && s.tbl != nil && s.streamDP != s.tbl.dp {
			newDP = s.tbl.dp
			opts = append(opts[:len(opts):len(opts)], managedwriter.UpdateSchemaDescriptor(newDP))
		}
		if offset >= 0 {
			opts = append(opts[:len(opts):len(opts)], managedwriter.WithOffset(offset))
		}
		res, err := s.stream.AppendRows(actx, rows, opts...)
		if err != nil {
			return classify(err)
		}
		resp, err := res.FullResponse(actx)
		if resp.GetUpdatedSchema() != nil {
			// The table's schema changed: read it before the next batch.
			s.tbl = nil
		}
		if err == nil {
			if newDP != nil {
				s.streamDP = newDP
			}
			return nil
		}
		switch status.Code(err) {
		case codes.AlreadyExists:
			return resilience.New(resilience.Fatal, errAlreadyExists)
		case codes.OutOfRange:
			return resilience.New(resilience.Fatal, errOutOfRange)
		}
		if re := resp.GetRowErrors(); len(re) > 0 {
			bad = map[int]error{}
			for _, r := range re {
				bad[int(r.GetIndex())] = resilience.New(resilience.Schema, fmt.Errorf("bigquery: the service refused the row: %s: %s", r.GetCode(), r.GetMessage()))
			}
			return nil
		}
		return classify(err)
	}, resilience.OnRetry(func(int, error, time.Duration) { s.retried.Inc() }))
	switch {
	case errors.Is(err, errAlreadyExists):
		return nil, errAlreadyExists
	case errors.Is(err, errOutOfRange):
		return nil, errOutOfRange
	}
	return bad, err
}

// Close ends the write stream and the clients. A committed stream is not
// finalized: the next run appends to it at the offset it keeps.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	if s.stream != nil {
		if err := s.stream.Close(); err != nil && !errors.Is(err, context.Canceled) {
			first = err
		}
		s.stream = nil
	}
	if s.mwc != nil {
		_ = s.mwc.Close()
		s.mwc = nil
	}
	if s.bqc != nil {
		_ = s.bqc.Close()
		s.bqc = nil
	}
	s.cancel()
	return first
}
