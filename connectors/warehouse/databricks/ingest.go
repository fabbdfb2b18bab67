package databricks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	pb "github.com/rivven/rivven-connect/connectors/warehouse/databricks/zerobuspb"
)

// gRPC metadata Zerobus reads on every stream.
const (
	mdAuthorization = "authorization"
	mdTableName     = "x-databricks-zerobus-table-name"
)

// ingester owns the Zerobus ephemeral streams of one sink: it opens them
// (with a fresh OAuth token), sends batches with increasing offsets,
// tracks the server's durability acknowledgements, and recovers a failed
// stream by opening a new one and sending again every batch it had not
// acknowledged.
type ingester struct {
	cfg        *Config
	client     pb.ZerobusClient
	table      string
	recordType pb.RecordType
	descriptor []byte
	token      func(ctx context.Context) (string, error)
	invalidate func()
	m          *metrics
	log        *slog.Logger

	bg     context.Context // streams live in it; cancelled by close
	cancel context.CancelFunc
	seq    atomic.Uint64 // stream generations, unique per process

	openMu    sync.Mutex // one stream open at a time
	recoverMu sync.Mutex // one recovery at a time

	mu       sync.Mutex
	cur      *gen
	gens     map[*gen]struct{} // open streams: cur, and those the server is draining
	inflight int               // records sent and not acknowledged
	changed  chan struct{}     // closed (and replaced) when acks arrive or batches fail
	closed   bool
	wg       sync.WaitGroup
}

// gen is one ephemeral stream.
type gen struct {
	id       uint64
	streamID string
	stream   pb.Zerobus_EphemeralStreamClient
	cancel   context.CancelFunc
	sendMu   sync.Mutex // Sends in offset order
	next     int64
	pending  []*pending // sent, not acknowledged, in offset order
	lastAck  time.Time  // last acknowledgement (or send into an idle stream)
	err      error
	draining bool // the server announced it closes this stream
}

// pending is one batch on its way.
type pending struct {
	batch     *pb.IngestRecordBatchRequest
	n         int
	offset    int64
	first     time.Time // first sent
	sent      time.Time // sent on its current stream
	gen       *gen
	done      chan struct{}
	err       error
	abandoned bool // its writer gave up waiting
}

func newIngester(cfg *Config, conn grpc.ClientConnInterface, table string, rt pb.RecordType, descriptor []byte,
	token func(context.Context) (string, error), invalidate func(), m *metrics, log *slog.Logger) *ingester {
	bg, cancel := context.WithCancel(context.Background())
	in := &ingester{cfg: cfg, client: pb.NewZerobusClient(conn), table: table, recordType: rt, descriptor: descriptor,
		token: token, invalidate: invalidate, m: m, log: log, bg: bg, cancel: cancel,
		gens: map[*gen]struct{}{}, changed: make(chan struct{})}
	in.wg.Add(1)
	go in.watchdog()
	return in
}

// wake tells waiters something changed. Call with mu held.
func (in *ingester) wake() {
	close(in.changed)
	in.changed = make(chan struct{})
}

// stream returns the current stream, opening one if there is none.
func (in *ingester) stream(ctx context.Context) (*gen, error) {
	in.mu.Lock()
	g := in.cur
	in.mu.Unlock()
	if g != nil {
		return g, nil
	}
	in.openMu.Lock()
	defer in.openMu.Unlock()
	in.mu.Lock()
	g, closed := in.cur, in.closed
	in.mu.Unlock()
	if closed {
		return nil, classifiedAs(classFatal, errors.New("sink closed"))
	}
	if g != nil {
		return g, nil
	}
	g, err := in.open(ctx)
	if err != nil {
		return nil, err
	}
	in.mu.Lock()
	in.cur = g
	in.gens[g] = struct{}{}
	in.mu.Unlock()
	return g, nil
}

// open creates a stream. A token the server refuses (revoked, or for
// another table) is dropped and the stream opened once more with a new
// one.
func (in *ingester) open(ctx context.Context) (*gen, error) {
	g, err := in.openOnce(ctx)
	if err != nil && classify(err) == classAuth {
		in.invalidate()
		g, err = in.openOnce(ctx)
	}
	return g, err
}

// openOnce creates a stream: the bearer token and table name as
// metadata, then create_stream, answered with the stream's id.
func (in *ingester) openOnce(ctx context.Context) (*gen, error) {
	ctx, cancelOpen := context.WithTimeout(ctx, time.Duration(in.cfg.RecoveryTimeoutMs)*time.Millisecond)
	defer cancelOpen()
	tok, err := in.token(ctx)
	if err != nil {
		return nil, fmt.Errorf("oauth token from %s: %w", in.cfg.UnityCatalogURL, classified(err))
	}
	sctx, cancel := context.WithCancel(in.bg)
	sctx = metadata.NewOutgoingContext(sctx, metadata.Pairs(mdAuthorization, "Bearer "+tok, mdTableName, in.table))
	g := &gen{id: in.seq.Add(1), cancel: cancel, lastAck: time.Now()}
	type opened struct {
		id  string
		err error
	}
	res := make(chan opened, 1)
	go func() {
		s, err := in.client.EphemeralStream(sctx)
		if err != nil {
			res <- opened{err: err}
			return
		}
		g.stream = s
		rt := in.recordType
		req := &pb.CreateIngestStreamRequest{TableName: proto.String(in.table), RecordType: &rt}
		if rt == pb.RecordType_PROTO {
			req.DescriptorProto = in.descriptor
		}
		if err := s.Send(&pb.EphemeralStreamRequest{Payload: &pb.EphemeralStreamRequest_CreateStream{CreateStream: req}}); err != nil && err != io.EOF {
			res <- opened{err: err}
			return
		}
		resp, err := s.Recv()
		if err != nil {
			res <- opened{err: err}
			return
		}
		cr := resp.GetCreateStreamResponse()
		if cr == nil {
			res <- opened{err: fmt.Errorf("the server answered create_stream with %T", resp.GetPayload())}
			return
		}
		res <- opened{id: cr.GetStreamId()}
	}()
	var o opened
	select {
	case o = <-res:
	case <-ctx.Done():
		cancel()
		o = <-res
		if o.err == nil || ctx.Err() == context.DeadlineExceeded {
			o.err = classifiedAs(classTimeout, fmt.Errorf("opening a stream took longer than recovery_timeout_ms (%d ms)", in.cfg.RecoveryTimeoutMs))
		}
	}
	if o.err != nil {
		cancel()
		err := classified(o.err)
		return nil, fmt.Errorf("create stream for %s: %w", in.table, err)
	}
	g.streamID = o.id
	in.log.Debug("databricks: stream open", "stream_id", g.streamID, "generation", g.id)
	in.wg.Add(1)
	go in.receive(g)
	return g, nil
}

// receive reads a stream's acknowledgements until it ends.
func (in *ingester) receive(g *gen) {
	defer in.wg.Done()
	for {
		resp, err := g.stream.Recv()
		if err != nil {
			in.fail(g, err)
			return
		}
		switch p := resp.GetPayload().(type) {
		case *pb.EphemeralStreamResponse_IngestRecordResponse:
			in.ack(g, p.IngestRecordResponse.GetDurabilityAckUpToOffset())
		case *pb.EphemeralStreamResponse_CloseStreamSignal:
			// The server closes this stream soon: new batches go to a
			// new one; this one's acknowledgements still count.
			in.mu.Lock()
			g.draining = true
			if in.cur == g {
				in.cur = nil
			}
			idle := len(g.pending) == 0
			in.mu.Unlock()
			in.log.Info("databricks: the server announced the stream closes", "stream_id", g.streamID, "in", p.CloseStreamSignal.GetDuration().AsDuration())
			if idle {
				in.retire(g)
			}
		}
	}
}

// ack settles the batches of g up to offset.
func (in *ingester) ack(g *gen, offset int64) {
	now := time.Now()
	in.mu.Lock()
	g.lastAck = now
	n := 0
	for n < len(g.pending) && g.pending[n].offset <= offset {
		p := g.pending[n]
		in.inflight -= p.n
		close(p.done)
		in.m.acksOK.Inc()
		in.m.ackDuration.Observe(float64(now.Sub(p.sent).Milliseconds()))
		n++
	}
	g.pending = g.pending[n:]
	idle := g.draining && len(g.pending) == 0
	if n > 0 {
		in.wake()
	}
	in.mu.Unlock()
	if idle {
		in.retire(g)
	}
}

// retire closes a stream that has nothing left in flight.
func (in *ingester) retire(g *gen) {
	in.mu.Lock()
	delete(in.gens, g)
	if g.err == nil {
		g.err = errRetired
	}
	in.mu.Unlock()
	g.sendMu.Lock()
	_ = g.stream.CloseSend()
	g.sendMu.Unlock()
	g.cancel()
}

var errRetired = errors.New("stream retired")

// fail marks g failed and hands its unacknowledged batches to recovery.
func (in *ingester) fail(g *gen, cause error) {
	in.mu.Lock()
	if g.err != nil {
		in.mu.Unlock()
		return
	}
	if cause == io.EOF {
		cause = errors.New("stream closed by the server")
	}
	g.err = cause
	delete(in.gens, g)
	if in.cur == g {
		in.cur = nil
	}
	left := g.pending
	g.pending = nil
	closed := in.closed
	in.mu.Unlock()
	g.cancel()
	if len(left) == 0 {
		return
	}
	in.log.Warn("databricks: stream failed with records unacknowledged", "stream_id", g.streamID, "batches", len(left), "records", countRecords(left), "error", cause)
	if closed {
		in.settle(left, classified(cause))
		return
	}
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		in.recover(left, cause)
	}()
}

func countRecords(ps []*pending) int {
	n := 0
	for _, p := range ps {
		n += p.n
	}
	return n
}

// settle ends batches with err (nil: acknowledged).
func (in *ingester) settle(ps []*pending, err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, p := range ps {
		in.inflight -= p.n
		p.err = err
		close(p.done)
		if err != nil && !p.abandoned {
			in.m.acksErr.Inc()
		}
	}
	in.wake()
}

// recover sends the batches a failed stream left unacknowledged on a new
// stream: up to recovery_retries attempts, recovery_backoff_ms apart,
// each bounded by recovery_timeout_ms. Without recovery, or for an error
// retrying cannot help, the batches fail with the stream's error.
func (in *ingester) recover(left []*pending, cause error) {
	in.recoverMu.Lock()
	defer in.recoverMu.Unlock()
	var live, gone []*pending
	in.mu.Lock()
	for _, p := range left {
		if p.abandoned {
			gone = append(gone, p)
		} else {
			live = append(live, p)
		}
	}
	in.mu.Unlock()
	in.settle(gone, errAbandoned)
	if len(live) == 0 {
		return
	}
	err := classified(cause)
	if !in.cfg.Recovery || !classify(err).retryable() {
		in.settle(live, err)
		return
	}
	for attempt := 1; attempt <= in.cfg.RecoveryRetries; attempt++ {
		if attempt > 1 {
			select {
			case <-time.After(time.Duration(in.cfg.RecoveryBackoffMs) * time.Millisecond):
			case <-in.bg.Done():
				in.settle(live, classifiedAs(classFatal, errors.New("sink closed during stream recovery")))
				return
			}
		}
		g, oerr := in.stream(in.bg)
		if oerr != nil {
			err = oerr
			in.log.Warn("databricks: stream recovery attempt failed", "attempt", attempt, "error", oerr)
			if !classify(oerr).retryable() {
				break
			}
			continue
		}
		in.m.recoveries.Inc()
		in.log.Info("databricks: stream recovered", "stream_id", g.streamID, "attempt", attempt, "batches", len(live))
		in.resend(g, live)
		return
	}
	in.settle(live, fmt.Errorf("stream recovery gave up after %d attempts: %w", in.cfg.RecoveryRetries, err))
}

var errAbandoned = errors.New("abandoned by its writer")

// send puts a batch on the current stream with the next offset.
func (in *ingester) send(ctx context.Context, p *pending) error {
	for {
		g, err := in.stream(ctx)
		if err != nil {
			return err
		}
		if in.resend(g, []*pending{p}) {
			return nil
		}
		// g failed or was drained meanwhile: take the next one.
	}
}

// resend sends batches on g with its next offsets; false if g cannot take
// them (failed or draining). Once a batch is in g.pending it belongs to
// g: acknowledged there, or recovered when g fails.
func (in *ingester) resend(g *gen, ps []*pending) bool {
	g.sendMu.Lock()
	defer g.sendMu.Unlock()
	in.mu.Lock()
	if g.err != nil || g.draining {
		in.mu.Unlock()
		return false
	}
	now := time.Now()
	if len(g.pending) == 0 {
		g.lastAck = now // the ack clock starts with the first batch in flight
	}
	reqs := make([]*pb.EphemeralStreamRequest, 0, len(ps))
	for _, p := range ps {
		if p.gen == nil {
			in.inflight += p.n
			p.first = now
		}
		p.offset, p.gen, p.sent = g.next, g, now
		g.next++
		g.pending = append(g.pending, p)
		b := proto.Clone(p.batch).(*pb.IngestRecordBatchRequest)
		b.OffsetId = proto.Int64(p.offset)
		reqs = append(reqs, &pb.EphemeralStreamRequest{Payload: &pb.EphemeralStreamRequest_IngestRecordBatch{IngestRecordBatch: b}})
	}
	in.mu.Unlock()
	for _, r := range reqs {
		if err := g.stream.Send(r); err != nil {
			// The receiver sees why the stream ended and recovers what
			// it left unacknowledged; a local error ends it here.
			if err != io.EOF {
				go in.fail(g, err)
			}
			break
		}
	}
	return true
}

// reserve waits until n more records fit under max_inflight_requests.
func (in *ingester) reserve(ctx context.Context, n int, deadline <-chan time.Time) error {
	for {
		in.mu.Lock()
		if in.inflight == 0 || in.inflight+n <= in.cfg.MaxInflightRequests {
			in.mu.Unlock()
			return nil
		}
		ch := in.changed
		in.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return classifiedAs(classTimeout, fmt.Errorf("%d records stayed unacknowledged for flush_timeout_ms (%d ms)", in.inflightNow(), in.cfg.FlushTimeoutMs))
		}
	}
}

func (in *ingester) inflightNow() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.inflight
}

// wait returns once p is acknowledged, failed, or the wait ends.
func (in *ingester) wait(ctx context.Context, p *pending, deadline <-chan time.Time) error {
	var err error
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		err = ctx.Err()
	case <-deadline:
		err = classifiedAs(classTimeout, fmt.Errorf("batch not acknowledged within flush_timeout_ms (%d ms)", in.cfg.FlushTimeoutMs))
	}
	in.mu.Lock()
	p.abandoned = true
	in.mu.Unlock()
	return err
}

// watchdog fails a stream whose oldest batch waited server_ack_timeout_ms
// for an acknowledgement, which recovers it.
func (in *ingester) watchdog() {
	defer in.wg.Done()
	limit := time.Duration(in.cfg.ServerAckTimeoutMs) * time.Millisecond
	t := time.NewTicker(min(max(limit/10, 5*time.Millisecond), time.Second))
	defer t.Stop()
	for {
		select {
		case <-in.bg.Done():
			return
		case now := <-t.C:
			var stale []*gen
			in.mu.Lock()
			for g := range in.gens {
				if len(g.pending) > 0 && now.Sub(g.lastAck) > limit {
					stale = append(stale, g)
				}
			}
			in.mu.Unlock()
			for _, g := range stale {
				in.fail(g, classifiedAs(classTimeout, fmt.Errorf("no acknowledgement within server_ack_timeout_ms (%d ms)", in.cfg.ServerAckTimeoutMs)))
			}
		}
	}
}

// flush waits until nothing is in flight.
func (in *ingester) flush(ctx context.Context) error {
	deadline := time.NewTimer(time.Duration(in.cfg.FlushTimeoutMs) * time.Millisecond)
	defer deadline.Stop()
	for {
		in.mu.Lock()
		n, ch := in.inflight, in.changed
		in.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%d records unacknowledged at close: %w", n, ctx.Err())
		case <-deadline.C:
			return classifiedAs(classTimeout, fmt.Errorf("%d records unacknowledged after flush_timeout_ms (%d ms)", n, in.cfg.FlushTimeoutMs))
		}
	}
}

// close flushes, then ends every stream.
func (in *ingester) close(ctx context.Context) error {
	err := in.flush(ctx)
	in.mu.Lock()
	in.closed = true
	gens := make([]*gen, 0, len(in.gens))
	for g := range in.gens {
		gens = append(gens, g)
	}
	in.cur = nil
	in.mu.Unlock()
	for _, g := range gens {
		in.retire(g)
	}
	in.cancel()
	in.wg.Wait()
	return err
}
