// Package snowflake is the Snowflake sink: rows streamed over the
// Snowpipe Streaming REST API with key-pair JWT authentication, exactly
// once per topic partition through the channels' offset tokens, and rows
// that do not fit the table dead-lettered with their column and reason.
package snowflake

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/metric"
	"github.com/rivven/rivven-connect/shared/resilience"
)

const (
	metricOK       = "snowflake.requests.success"
	metricFailed   = "snowflake.requests.failed"
	metricRetried  = "snowflake.requests.retried"
	metricDuration = "snowflake.request.duration_ms"
	metricBatch    = "snowflake.batch.size"
	metricRejected = "snowflake.circuit_breaker.rejected"
	metricWritten  = "snowflake.rows.written"
	metricBadRows  = "snowflake.rows.dead_lettered"
	metricSkipped  = "snowflake.rows.skipped_committed"
	metricSrvErr   = "snowflake.rows.server_errors"
)

func init() {
	catalog.RegisterSink[Config](catalog.Meta{
		Name:        "snowflake",
		Category:    catalog.Warehouse,
		Description: "Streams rows into a Snowflake table over the Snowpipe Streaming REST API with key-pair JWT authentication: one channel per topic partition whose committed offset token is the partition's offset, so a redelivered batch is not inserted twice; gzip above a threshold, retries honouring Retry-After, a circuit breaker; rows that do not fit the table's columns to the dead-letter topic with column and reason.",
		Tags:        []string{"snowflake", "warehouse", "snowpipe", "streaming", "exactly-once"},
		Metrics:     []string{metricOK, metricFailed, metricRetried, metricDuration, metricBatch, metricRejected, metricWritten, metricBadRows, metricSkipped, metricSrvErr},
	}, func(ctx context.Context, c *Config) (connector.Sink, error) { return New(ctx, c) })
}

// Sink streams into one table through one pipe.
type Sink struct {
	cfg    Config
	c      *client
	sql    *sqlClient
	policy resilience.Policy
	br     *resilience.Circuit
	now    func() time.Time
	// onRetry, when set (tests), sees each retry's wait.
	onRetry func(time.Duration)

	mu       sync.Mutex
	channels map[string]*channel
	table    *tableSchema // nil until read (or when it cannot be)

	ok, failed, retried, rejected, written, badRows, skipped, srvErr *metric.Counter
	batchSize                                                        *metric.Gauge
	duration                                                         *metric.Histogram
}

// channel is one named channel and what this process knows of it.
type channel struct {
	name string
	mu   sync.Mutex // one append sequence at a time

	open      bool
	cont      string // continuation token for the next append
	committed int64  // last committed offset token; -1 none
	errors    int64  // the service's error-row count last seen
}

// New builds the sink; it reads the key at once (a bad key is a config
// error) and contacts Snowflake on Check or the first Write.
func New(ctx context.Context, cfg *Config) (*Sink, error) {
	key, err := readKey(cfg)
	if err != nil {
		return nil, connector.Fatal(err)
	}
	rt := connector.RuntimeFrom(ctx)
	s := &Sink{cfg: *cfg, now: time.Now, channels: map[string]*channel{},
		policy: resilience.Policy{MaxRetries: cfg.Retry.MaxRetries, Initial: time.Duration(cfg.Retry.InitialBackoffMs) * time.Millisecond,
			Max: time.Duration(cfg.Retry.MaxBackoffMs) * time.Millisecond, Multiplier: cfg.Retry.BackoffMultiplier, Jitter: cfg.Retry.JitterFactor},
		ok:        rt.Counter(metricOK, "Successful API requests."),
		failed:    rt.Counter(metricFailed, "Failed API requests (after retries)."),
		retried:   rt.Counter(metricRetried, "Retried requests."),
		rejected:  rt.Counter(metricRejected, "Requests rejected by the open circuit breaker."),
		written:   rt.Counter(metricWritten, "Rows appended and committed."),
		badRows:   rt.Counter(metricBadRows, "Rows sent to the dead-letter topic (they do not fit the table)."),
		skipped:   rt.Counter(metricSkipped, "Redelivered rows left out because the channel had committed them already."),
		srvErr:    rt.Counter(metricSrvErr, "Rows the service reported as errors on commit (rows_error_count)."),
		duration:  rt.Histogram(metricDuration, "Milliseconds an API request took.", metric.LatencyMillis),
		batchSize: rt.Gauge(metricBatch, "Rows in the current batch."),
	}
	if err := s.policy.Validate(); err != nil {
		return nil, connector.Fatal(err)
	}
	jwts, err := newJWTSource(cfg, key, func() time.Time { return s.now() })
	if err != nil {
		return nil, connector.Fatal(err)
	}
	s.c = &client{cfg: &s.cfg, base: cfg.baseURL(), jwt: jwts, http: &http.Client{},
		timeout: time.Duration(cfg.RequestTimeoutSecs) * time.Second, now: func() time.Time { return s.now() },
		observe: func(ok bool, d time.Duration) {
			if ok {
				s.ok.Inc()
			}
			s.duration.Observe(float64(d.Microseconds()) / 1000)
		}}
	if s.sql, err = newSQLClient(&s.cfg, key); err != nil {
		return nil, connector.Fatal(err)
	}
	if s.br = resilience.NewCircuit(resilience.CircuitConfig(cfg.CircuitBreaker)); s.br != nil {
		s.br.Now = func() time.Time { return s.now() }
	}
	return s, nil
}

// BatchPolicy asks long-lived runners for batches of batch_size events.
func (s *Sink) BatchPolicy() (int, time.Duration) {
	return s.cfg.BatchSize, time.Duration(s.cfg.FlushIntervalSecs) * time.Second
}

// Check authenticates for streaming (JWT, hostname discovery, scoped
// token) and reads the pipe's channel status (the pipe exists and the
// role may stream into it); then, through the driver, logs in with the
// same key, checks the session got its warehouse, reads the table's
// columns and checks that the session's roles hold INSERT (or
// OWNERSHIP) on it — or, when the table is missing and create_table is
// set, CREATE TABLE (or OWNERSHIP) on the schema.
func (s *Sink) Check(ctx context.Context) error {
	if _, err := s.c.status(ctx, []string{s.cfg.ChannelPrefix + "_check"}); err != nil {
		return fmt.Errorf("snowflake: pipe %s.%s.%s: %w", s.cfg.Database, s.cfg.Schema, s.cfg.pipe(), err)
	}
	role, err := s.sql.checkSession(ctx, &s.cfg)
	if err != nil {
		return fmt.Errorf("snowflake: %w", err)
	}
	objType, object, want := "TABLE", s.qualified(), []string{"INSERT", "OWNERSHIP"}
	if _, err := s.loadTable(ctx); err != nil {
		if !errors.Is(err, errNoTable) || !s.cfg.CreateTable {
			return fmt.Errorf("snowflake: %w", err)
		}
		objType, object, want = "SCHEMA", quoteName(s.cfg.Database)+"."+quoteName(s.cfg.Schema), []string{"CREATE TABLE", "OWNERSHIP"}
	}
	ok, err := s.sql.holds(ctx, objType, object, want...)
	if err != nil {
		return fmt.Errorf("snowflake: privileges on %s %s: %w", strings.ToLower(objType), object, err)
	}
	if !ok {
		return resilience.Errorf(resilience.Auth, "snowflake: role %s holds neither %s on %s %s (nor does any role granted to it)",
			role, strings.Join(want, " nor "), strings.ToLower(objType), object)
	}
	return nil
}

// item is one row on its way to a channel.
type item struct {
	idx int
	tok int64 // the offset token: the record's offset in its partition
	row []byte
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// channelOf names the channel of an event and its offset token; ok is
// false when the trigger gave no log offset (SQS, Pub/Sub): such rows go
// to the pipe's Elastic channel, at least once.
func (s *Sink) channelOf(e *events.Event) (string, int64, bool) {
	d := e.Delivered
	if d == nil || !d.HasOffset {
		return "", 0, false
	}
	return s.cfg.ChannelPrefix + "_" + unsafeName.ReplaceAllString(d.Topic, "_") + "_" + strconv.Itoa(int(d.Partition)), d.Offset, true
}

// Write appends the batch's rows and returns once the service committed
// them. Per channel, rows at or below the committed offset token are left
// out: a redelivered batch is not inserted twice.
func (s *Sink) Write(ctx context.Context, batch []*events.Event) error {
	if !s.br.Allow() {
		s.rejected.Inc()
		return resilience.New(resilience.Connection, fmt.Errorf("snowflake: %w", resilience.ErrOpen))
	}
	s.batchSize.Set(float64(len(batch)))
	table, err := s.tableFor(ctx, batch)
	if err != nil {
		s.record(false)
		return fmt.Errorf("snowflake: %w", err)
	}
	failed := map[int]error{}
	var order []string
	groups := map[string][]item{}
	var elastic []item
	for i, e := range batch {
		row, err := s.encodeRow(e, table)
		if err != nil {
			failed[i] = err
			continue
		}
		if row == nil {
			continue
		}
		name, tok, ok := s.channelOf(e)
		if !ok {
			elastic = append(elastic, item{idx: i, row: row})
			continue
		}
		if _, seen := groups[name]; !seen {
			order = append(order, name)
		}
		groups[name] = append(groups[name], item{idx: i, tok: tok, row: row})
	}
	for _, name := range order {
		if err := s.writeChannel(ctx, s.channel(name), groups[name]); err != nil {
			s.record(false)
			s.failed.Inc()
			return fmt.Errorf("snowflake: %w", err)
		}
	}
	if len(elastic) > 0 {
		if err := s.writeElastic(ctx, elastic); err != nil {
			s.record(false)
			s.failed.Inc()
			return fmt.Errorf("snowflake: %w", err)
		}
	}
	s.record(true)
	if len(failed) == 0 {
		return nil
	}
	s.badRows.Add(uint64(len(failed)))
	return &connector.WriteError{Failed: failed}
}

// noteRetry counts a retry (and tells a test the wait).
func (s *Sink) noteRetry(_ int, _ error, wait time.Duration) {
	s.retried.Inc()
	if s.onRetry != nil {
		s.onRetry(wait)
	}
}

func (s *Sink) record(ok bool) {
	s.br.Done(ok)
}

func (s *Sink) channel(name string) *channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.channels[name]
	if ch == nil {
		ch = &channel{name: name, committed: -1}
		s.channels[name] = ch
	}
	return ch
}

// parseToken reads an offset token this sink wrote; "" is none.
func parseToken(ch, tok string) (int64, error) {
	if tok == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(tok, 10, 64)
	if err != nil {
		return 0, resilience.Errorf(resilience.Fatal, "channel %s has the offset token %.40q, which is not an offset this sink wrote: another writer uses the channel (give this pipeline its own channel_prefix)", ch, tok)
	}
	return n, nil
}

// writeChannel appends items (in offset order) to one channel and waits
// for their commit. Any failure closes the channel in this process: the
// retry opens it again, which drops what was appended but not committed
// and answers the committed offset token to filter against, so a retry
// never duplicates a row.
func (s *Sink) writeChannel(ctx context.Context, ch *channel, items []item) error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return resilience.Do(ctx, s.policy, func(ctx context.Context) error {
		err := s.appendCommitted(ctx, ch, items)
		if err != nil {
			ch.open = false
		}
		return err
	}, resilience.OnRetry(s.noteRetry))
}

func (s *Sink) appendCommitted(ctx context.Context, ch *channel, items []item) error {
	if !ch.open {
		cont, st, err := s.c.openChannel(ctx, ch.name)
		if err != nil {
			return err
		}
		committed, err := parseToken(ch.name, st.LastCommittedOffsetToken)
		if err != nil {
			return err
		}
		ch.cont, ch.committed, ch.errors, ch.open = cont, committed, st.errors(), true
	}
	todo := items[:0:0]
	for _, it := range items {
		if it.tok > ch.committed {
			todo = append(todo, it)
		}
	}
	if skipped := len(items) - len(todo); skipped > 0 {
		s.skipped.Add(uint64(skipped))
	}
	if len(todo) == 0 {
		return nil
	}
	for _, chunk := range s.chunks(todo) {
		body := make([]byte, 0, chunk.bytes)
		for _, it := range chunk.items {
			body = append(body, it.row...)
			body = append(body, '\n')
		}
		first, last := chunk.items[0].tok, chunk.items[len(chunk.items)-1].tok
		next, err := s.c.appendRows(ctx, ch.name, ch.cont, strconv.FormatInt(first, 10), strconv.FormatInt(last, 10), body)
		if err != nil {
			return err
		}
		if next == "" {
			return resilience.Errorf(resilience.Connection, "append rows to channel %s: no next continuation token in the answer", ch.name)
		}
		ch.cont = next
	}
	if err := s.waitCommitted(ctx, ch, todo[len(todo)-1].tok); err != nil {
		return err
	}
	s.written.Add(uint64(len(todo)))
	return nil
}

type chunk struct {
	items []item
	bytes int
}

// chunks cuts items into append requests of at most batch_size rows and
// under the request size limit, never between two rows with the same
// offset token (one record may give several rows): the committed token
// must cover all of a record's rows or none.
func (s *Sink) chunks(items []item) []chunk {
	limit := maxRequestBytes - 64<<10
	var out []chunk
	var cur chunk
	for i := 0; i < len(items); {
		j := i + 1
		n := len(items[i].row) + 1
		for j < len(items) && items[j].tok == items[i].tok {
			n += len(items[j].row) + 1
			j++
		}
		if len(cur.items) > 0 && (len(cur.items)+(j-i) > s.cfg.BatchSize || cur.bytes+n > limit) {
			out = append(out, cur)
			cur = chunk{}
		}
		cur.items = append(cur.items, items[i:j]...)
		cur.bytes += n
		i = j
	}
	if len(cur.items) > 0 {
		out = append(out, cur)
	}
	return out
}

// waitCommitted polls the channel's status until its committed offset
// token reaches tok, for at most commit_timeout_secs.
func (s *Sink) waitCommitted(ctx context.Context, ch *channel, tok int64) error {
	deadline := s.now().Add(time.Duration(s.cfg.CommitTimeoutSecs) * time.Second)
	wait := 5 * time.Millisecond
	for {
		sts, err := s.c.status(ctx, []string{ch.name})
		if err != nil {
			return err
		}
		st, ok := sts[ch.name]
		if !ok {
			return resilience.Errorf(resilience.Connection, "channel %s: not in the status answer (dropped?)", ch.name)
		}
		committed, err := parseToken(ch.name, st.LastCommittedOffsetToken)
		if err != nil {
			return err
		}
		if committed >= tok {
			ch.committed = committed
			if n := st.errors() - ch.errors; n > 0 {
				s.srvErr.Add(uint64(n))
				connector.RuntimeFrom(ctx).Logger().Warn("snowflake: the service rejected rows on commit (see the pipe's error table)",
					"channel", ch.name, "rows", n, "last_error_offset_upper_bound", st.LastErrorOffsetUpper, "last_error", st.LastErrorMessage)
			}
			ch.errors = st.errors()
			return nil
		}
		if !s.now().Before(deadline) {
			return resilience.Errorf(resilience.Timeout, "channel %s: offset token %d not committed within commit_timeout_secs (%ds); last committed %d",
				ch.name, tok, s.cfg.CommitTimeoutSecs, committed)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(wait*2, 250*time.Millisecond)
	}
}

// writeElastic sends rows without log offsets to the pipe's Elastic
// channel: a 200 is durable, delivery is at least once (the engine's
// delivery ledger removes redeliveries it has seen). Every retry of one
// request keeps its requestId and counts retryCount up, as documented.
func (s *Sink) writeElastic(ctx context.Context, items []item) error {
	for _, c := range s.chunks(items) {
		body := make([]byte, 0, c.bytes)
		for _, it := range c.items {
			body = append(body, it.row...)
			body = append(body, '\n')
		}
		reqID := uuid.NewString()
		attempt := 0
		err := resilience.Do(ctx, s.policy, func(ctx context.Context) error {
			err := s.c.appendElastic(ctx, reqID, attempt, body)
			attempt++
			return err
		}, resilience.OnRetry(s.noteRetry))
		if err != nil {
			return err
		}
		s.written.Add(uint64(len(c.items)))
	}
	return nil
}

// Close drops nothing: every Write returned after its rows were
// committed; channels stay (their offset tokens are the position).
func (s *Sink) Close(context.Context) error {
	s.c.http.CloseIdleConnections()
	return s.sql.close()
}
