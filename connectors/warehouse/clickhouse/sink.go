// Package clickhouse is the ClickHouse sink: batches of events inserted
// over the HTTP interface in RowBinary, optionally in ClickHouse's
// compressed block format (LZ4, ZSTD), with every column type encoded
// exactly from the event's JSON and rows that do not fit dead-lettered
// with their column and reason.
package clickhouse

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	chcompress "github.com/ClickHouse/ch-go/compress"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/format"
	"github.com/rivven/rivven-connect/shared/metric"
	"github.com/rivven/rivven-connect/shared/resilience"
)

const (
	metricBatchesOK  = "clickhouse.batches.success"
	metricBatchesBad = "clickhouse.batches.failed"
	metricRetried    = "clickhouse.batches.retried"
	metricWritten    = "clickhouse.records.written"
	metricFailed     = "clickhouse.records.failed"
	metricRejected   = "clickhouse.circuit_breaker.rejected"
	metricBatchSize  = "clickhouse.batch.size"
	metricDuration   = "clickhouse.batch.duration_ms"
)

func init() {
	catalog.RegisterSink[Config](catalog.Meta{
		Name:        "clickhouse",
		Category:    catalog.Warehouse,
		Description: "Inserts batches into a ClickHouse table over HTTP(S) in RowBinary with LZ4 or ZSTD compression: columns by name with exact types (Int8…UInt256, Decimal, DateTime64 with zones, UUID, Enum, Nullable, LowCardinality, Array, Map) or the reference's envelope table; bad rows to the dead-letter topic with column and reason; CollapsingMergeTree/ReplacingMergeTree deletes; insert deduplication tokens from delivery ids.",
		Tags:        []string{"clickhouse", "warehouse", "olap", "rowbinary", "analytics"},
		Metrics:     []string{metricBatchesOK, metricBatchesBad, metricRetried, metricWritten, metricFailed, metricRejected, metricBatchSize, metricDuration},
	}, func(ctx context.Context, c *Config) (connector.Sink, error) { return New(ctx, c) })
}

// Sink inserts into one table.
type Sink struct {
	cfg    Config
	base   *url.URL
	client *http.Client
	policy resilience.Policy
	br     *resilience.Circuit

	mu      sync.Mutex
	schema  *schema
	version [2]int // major, minor; zero until known

	okB, badB, retried, written, failed, rejected *metric.Counter
	size                                          *metric.Gauge
	duration                                      *metric.Histogram
}

// column is one insertable column of the table.
type column struct {
	name string
	typ  *colType
}

type schema struct {
	cols     []column
	envelope bool
	insert   string // INSERT INTO db.t (cols) FORMAT RowBinary
}

var envelopeCols = format.WarehouseColumns

// New builds the sink; it contacts the server on Check or the first Write.
func New(ctx context.Context, cfg *Config) (*Sink, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, connector.Fatal(errors.New("url: not a URL"))
	}
	rt := connector.RuntimeFrom(ctx)
	s := &Sink{cfg: *cfg, base: u,
		client: &http.Client{Timeout: 5 * time.Minute},
		policy: resilience.Policy{MaxRetries: cfg.MaxRetries, Initial: time.Duration(cfg.InitialBackoffMs) * time.Millisecond,
			Max: time.Duration(cfg.MaxBackoffMs) * time.Millisecond, Multiplier: 2, Jitter: 0.2},
		okB:      rt.Counter(metricBatchesOK, "Successfully inserted batches."),
		badB:     rt.Counter(metricBatchesBad, "Failed batch inserts (after all retries)."),
		retried:  rt.Counter(metricRetried, "Batch retry attempts."),
		written:  rt.Counter(metricWritten, "Records written."),
		failed:   rt.Counter(metricFailed, "Records failed (dead-lettered or skipped)."),
		rejected: rt.Counter(metricRejected, "Batches rejected by the open circuit breaker."),
		size:     rt.Gauge(metricBatchSize, "Rows in the last batch."),
		duration: rt.Histogram(metricDuration, "Milliseconds a batch insert took end to end.", metric.LatencyMillis),
	}
	s.br = resilience.NewCircuit(resilience.CircuitConfig(cfg.CircuitBreaker)) // nil when disabled
	return s, nil
}

// BatchPolicy asks long-lived runners for batches of batch_size events.
func (s *Sink) BatchPolicy() (int, time.Duration) {
	return s.cfg.BatchSize, time.Duration(s.cfg.FlushIntervalSecs) * time.Second
}

// Check asks the server's version and reads the table's columns.
func (s *Sink) Check(ctx context.Context) error {
	if _, err := s.loadSchema(ctx, true); err != nil {
		return fmt.Errorf("clickhouse: %w", err)
	}
	return nil
}

// query runs a statement and returns the response body.
func (s *Sink) query(ctx context.Context, params url.Values, body io.Reader) ([]byte, error) {
	u := *s.base
	q := u.Query()
	for k, vs := range params {
		q[k] = vs
	}
	q.Set("database", s.cfg.Database)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), body)
	if err != nil {
		return nil, err
	}
	if s.cfg.AccessToken != "" {
		req.Header.Set("Authorization", "Bearer "+s.cfg.AccessToken)
	} else {
		req.SetBasicAuth(s.cfg.Username, s.cfg.Password)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		// The transport's error names the URL, which holds no secret.
		return nil, resilience.New(resilience.Connection, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, resilience.New(resilience.Connection, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 500 {
			msg = msg[:500] + "…"
		}
		err := fmt.Errorf("HTTP %d: %s", resp.StatusCode, msg)
		code := serverCode(msg)
		switch code {
		case 16, 47, 60, 81, 115: // no such column, unknown identifier/table/database, unknown setting
			return nil, resilience.New(resilience.Schema, err)
		case 192, 193, 194, 195, 516: // unknown user, wrong password, required password, ip not allowed, authentication failed
			return nil, resilience.New(resilience.Auth, err)
		case 497: // access denied
			return nil, resilience.New(resilience.Auth, err)
		}
		return nil, resilience.FromHTTP(resp.StatusCode, resp.Header.Get("Retry-After"), time.Now(), err)
	}
	return out, nil
}

// serverCode is the error code in ClickHouse's "Code: N, ..." message.
func serverCode(msg string) int {
	i := strings.Index(msg, "Code: ")
	if i < 0 {
		return 0
	}
	j := i + 6
	for j < len(msg) && msg[j] >= '0' && msg[j] <= '9' {
		j++
	}
	n, _ := strconv.Atoi(msg[i+6 : j])
	return n
}

func (s *Sink) exec(ctx context.Context, sql string) ([]byte, error) {
	return s.query(ctx, nil, strings.NewReader(sql))
}

// loadSchema returns the table's insertable columns (read once; again
// when fresh).
func (s *Sink) loadSchema(ctx context.Context, fresh bool) (*schema, error) {
	s.mu.Lock()
	sc := s.schema
	s.mu.Unlock()
	if sc != nil && !fresh {
		return sc, nil
	}
	v, err := s.exec(ctx, "SELECT version()")
	if err != nil {
		return nil, fmt.Errorf("server version: %w", err)
	}
	var ver [2]int
	parts := strings.SplitN(strings.TrimSpace(string(v)), ".", 3)
	if len(parts) >= 2 {
		ver[0], _ = strconv.Atoi(parts[0])
		ver[1], _ = strconv.Atoi(parts[1])
	}
	out, err := s.exec(ctx, fmt.Sprintf("DESCRIBE TABLE %s.%s FORMAT TabSeparated", quoteIdent(s.cfg.Database), quoteIdent(s.cfg.Table)))
	if err != nil {
		return nil, fmt.Errorf("table %s.%s: %w", s.cfg.Database, s.cfg.Table, err)
	}
	sc = &schema{}
	sc2 := bufio.NewScanner(bytes.NewReader(out))
	sc2.Buffer(make([]byte, 1<<16), 1<<24)
	for sc2.Scan() {
		f := strings.Split(sc2.Text(), "\t")
		if len(f) < 3 {
			continue
		}
		name, typ, kind := unescapeTSV(f[0]), unescapeTSV(f[1]), f[2]
		if kind == "MATERIALIZED" || kind == "ALIAS" || kind == "EPHEMERAL" {
			continue
		}
		t, err := parseType(typ)
		if err != nil {
			return nil, connector.Fatal(fmt.Errorf("column %s: %w", name, err))
		}
		sc.cols = append(sc.cols, column{name: name, typ: t})
	}
	names := make([]string, len(sc.cols))
	quoted := make([]string, len(sc.cols))
	for i, c := range sc.cols {
		names[i], quoted[i] = c.name, quoteIdent(c.name)
	}
	switch s.cfg.Layout {
	case "envelope":
		sc.envelope = true
	case "auto":
		a, b := append([]string(nil), names...), append([]string(nil), envelopeCols...)
		sort.Strings(a)
		sort.Strings(b)
		sc.envelope = strings.Join(a, ",") == strings.Join(b, ",")
	}
	if s.cfg.Validation {
		if err := s.validate(sc); err != nil {
			return nil, connector.Fatal(err)
		}
	}
	sc.insert = fmt.Sprintf("INSERT INTO %s.%s (%s) FORMAT RowBinary", quoteIdent(s.cfg.Database), quoteIdent(s.cfg.Table), strings.Join(quoted, ", "))
	s.mu.Lock()
	s.schema, s.version = sc, ver
	s.mu.Unlock()
	return sc, nil
}

// validate checks the table has what the layout and CDC settings need.
func (s *Sink) validate(sc *schema) error {
	has := map[string]*colType{}
	for _, c := range sc.cols {
		has[c.name] = c.typ
	}
	if sc.envelope {
		for _, n := range envelopeCols {
			if has[n] == nil {
				return fmt.Errorf("table %s.%s lacks the envelope column %s", s.cfg.Database, s.cfg.Table, n)
			}
		}
		return nil
	}
	for _, c := range []struct{ key, name string }{{"sign_column", s.cfg.SignColumn}, {"version_column", s.cfg.VersionColumn}, {"deleted_column", s.cfg.DeletedColumn}} {
		if c.name != "" && has[c.name] == nil {
			return fmt.Errorf("%s: table %s.%s has no column %s", c.key, s.cfg.Database, s.cfg.Table, c.name)
		}
	}
	return nil
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "\\`") + "`" }

func unescapeTSV(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			switch s[i] {
			case 't':
				b.WriteByte('\t')
			case 'n':
				b.WriteByte('\n')
			case '0':
				b.WriteByte(0)
			default:
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Write inserts the batch as one INSERT. Rows that do not fit their
// columns are left out and reported (or dropped with skip_invalid_rows).
func (s *Sink) Write(ctx context.Context, batch []*events.Event) error {
	start := time.Now()
	if !s.br.Allow() {
		s.rejected.Inc()
		s.failed.Add(uint64(len(batch)))
		return resilience.Errorf(resilience.Connection, "clickhouse: circuit breaker open after %d consecutive failures", s.cfg.CircuitBreaker.FailureThreshold)
	}
	sc, err := s.loadSchema(ctx, false)
	if err != nil {
		s.record(false)
		return fmt.Errorf("clickhouse: %w", err)
	}
	enc := &encoder{}
	failed := map[int]error{}
	rows := 0
	now := time.Now().UTC()
	for i, e := range batch {
		n, err := s.appendEvent(enc, sc, e, now)
		if err != nil {
			failed[i] = err
			continue
		}
		rows += n
	}
	s.size.Set(float64(rows))
	if rows > 0 {
		if err := s.insert(ctx, sc, enc.buf, batch, failed); err != nil {
			s.record(false)
			s.badB.Inc()
			if resilience.ClassOf(err) == resilience.Schema {
				// The table changed: read it again before the next batch.
				s.mu.Lock()
				s.schema = nil
				s.mu.Unlock()
			}
			return fmt.Errorf("clickhouse: insert into %s.%s: %w", s.cfg.Database, s.cfg.Table, err)
		}
	}
	s.record(true)
	s.okB.Inc()
	s.written.Add(uint64(len(batch) - len(failed)))
	s.duration.Observe(float64(time.Since(start).Microseconds()) / 1000)
	if len(failed) == 0 {
		return nil
	}
	s.failed.Add(uint64(len(failed)))
	if s.cfg.SkipInvalidRows {
		for i, err := range failed {
			connector.RuntimeFrom(ctx).Logger().Warn("clickhouse: skipped a row", "index", i, "reason", err)
		}
		return nil
	}
	return &connector.WriteError{Failed: failed}
}

func (s *Sink) record(ok bool) {
	s.br.Done(ok)
}

// appendEvent encodes the rows of one event (none, one, or the cancel
// and state rows of an update with sign_column) and returns how many.
// On error nothing of the event stays in the buffer.
func (s *Sink) appendEvent(enc *encoder, sc *schema, e *events.Event, now time.Time) (int, error) {
	mark := len(enc.buf)
	n, err := s.appendRows(enc, sc, e, now)
	if err != nil {
		enc.buf = enc.buf[:mark]
		return 0, err
	}
	return n, nil
}

func (s *Sink) appendRows(enc *encoder, sc *schema, e *events.Event, now time.Time) (int, error) {
	if sc.envelope {
		return 1, s.appendEnvelope(enc, sc, e, now)
	}
	if !e.Type.IsData() {
		return 0, nil
	}
	deletes := s.cfg.Deletes
	if deletes == "auto" {
		deletes = "skip"
		if s.cfg.SignColumn != "" || s.cfg.DeletedColumn != "" {
			deletes = "write"
		}
	}
	switch e.Type {
	case events.Delete:
		if deletes == "skip" {
			return 0, nil
		}
		row, err := e.Before()
		if err != nil || row == nil {
			return 0, fmt.Errorf("delete without a row: %v", err)
		}
		return 1, s.appendRow(enc, sc, row, e, -1)
	case events.Update:
		n := 0
		if s.cfg.SignColumn != "" {
			// CollapsingMergeTree: cancel the old state, then write the new.
			before, err := e.Before()
			if err != nil {
				return 0, err
			}
			if before == nil {
				return 0, fmt.Errorf("update without a before image: sign_column needs full before images (REPLICA IDENTITY FULL, binlog_row_image FULL)")
			}
			if err := s.appendRow(enc, sc, before, e, -1); err != nil {
				return 0, fmt.Errorf("before image: %w", err)
			}
			n++
		}
		after, err := e.After()
		if err != nil || after == nil {
			return 0, fmt.Errorf("update without an after image: %v", err)
		}
		return n + 1, s.appendRow(enc, sc, after, e, 1)
	}
	row, err := e.After()
	if err != nil {
		return 0, err
	}
	if row == nil {
		return 0, errors.New("event has no row")
	}
	return 1, s.appendRow(enc, sc, row, e, 1)
}

// appendRow encodes one row; sign is -1 for a row being cancelled or deleted.
func (s *Sink) appendRow(enc *encoder, sc *schema, row map[string]any, e *events.Event, sign int) error {
	for _, c := range sc.cols {
		v, ok := row[c.name]
		switch {
		case c.name == s.cfg.SignColumn:
			v, ok = json.Number(strconv.Itoa(sign)), true
		case c.name == s.cfg.DeletedColumn:
			d := "0"
			if sign < 0 {
				d = "1"
			}
			v, ok = json.Number(d), true
		case c.name == s.cfg.VersionColumn && !ok:
			if e.Metadata.Sequence != nil {
				v = json.Number(strconv.FormatUint(*e.Metadata.Sequence, 10))
			} else {
				v = json.Number(strconv.FormatInt(e.Timestamp.UnixNano(), 10))
			}
			ok = true
		}
		if !ok {
			// An absent field is the type's default, as ClickHouse fills
			// an omitted column; an explicit null is checked.
			v = zeroOf(c.typ)
		}
		if err := enc.encode(c.typ, v); err != nil {
			return fmt.Errorf("column %s (%s): %w", c.name, c.typ, err)
		}
	}
	return nil
}

// zeroOf is the default value of a type.
func zeroOf(t *colType) any {
	switch t.name {
	case "Nullable":
		return nil
	case "LowCardinality":
		return zeroOf(t.inner[0])
	case "String", "FixedString":
		return ""
	case "UUID":
		return "00000000-0000-0000-0000-000000000000"
	case "Array":
		return []any{}
	case "Map":
		return map[string]any{}
	case "Tuple":
		a := make([]any, len(t.inner))
		for i, in := range t.inner {
			a[i] = zeroOf(in)
		}
		return a
	case "Enum8", "Enum16":
		lo := int64(1 << 62)
		for v := range t.vals {
			lo = min(lo, v)
		}
		return json.Number(strconv.FormatInt(lo, 10))
	}
	return json.Number("0")
}

// appendEnvelope writes the reference's table: every field a String.
func (s *Sink) appendEnvelope(enc *encoder, sc *schema, e *events.Event, now time.Time) error {
	vals, err := format.WarehouseRow(e, now)
	if err != nil {
		return err
	}
	for _, c := range sc.cols {
		if err := enc.encode(c.typ, vals[c.name]); err != nil {
			return fmt.Errorf("column %s (%s): %w", c.name, c.typ, err)
		}
	}
	return nil
}

// dedupToken names the batch after its delivery ids; "" when an event
// has none (then a redelivery could not be recognized anyway).
func dedupToken(batch []*events.Event, failed map[int]error, table string) string {
	h := sha256.New()
	h.Write([]byte(table))
	for i, e := range batch {
		if _, bad := failed[i]; bad {
			continue
		}
		d := e.Delivered
		if d == nil {
			return ""
		}
		fmt.Fprintf(h, "\x00%s\x00%d\x00%d\x00%s", d.Topic, d.Partition, d.Offset, d.ID)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// insert sends the rows with retries.
func (s *Sink) insert(ctx context.Context, sc *schema, rows []byte, batch []*events.Event, failed map[int]error) error {
	params := url.Values{"query": {sc.insert}}
	body := rows
	if m, ok := map[string]chcompress.Method{"lz4": chcompress.LZ4, "zstd": chcompress.ZSTD}[s.cfg.Compression]; ok {
		// ClickHouse's compressed format: blocks of at most 1 MiB, each
		// with its method, sizes and CityHash128 checksum.
		w := chcompress.NewWriter(chcompress.LevelZero, m)
		var out []byte
		for off := 0; off < len(rows); off += 1 << 20 {
			if err := w.Compress(rows[off:min(off+1<<20, len(rows))]); err != nil {
				return err
			}
			out = append(out, w.Data...)
		}
		body = out
		params.Set("decompress", "1")
	}
	s.mu.Lock()
	ver := s.version
	s.mu.Unlock()
	tokenSupported := ver[0] > 22 || (ver[0] == 22 && ver[1] >= 2)
	if s.cfg.DedupToken == "on" || (s.cfg.DedupToken == "auto" && tokenSupported) {
		if tok := dedupToken(batch, failed, s.cfg.Database+"."+s.cfg.Table); tok != "" {
			params.Set("insert_deduplication_token", tok)
		}
	}
	return resilience.Do(ctx, s.policy, func(ctx context.Context) error {
		_, err := s.query(ctx, params, bytes.NewReader(body))
		return err
	}, resilience.OnRetry(func(int, error, time.Duration) { s.retried.Inc() }))
}

// Close has nothing to flush: every Write inserted its batch.
func (s *Sink) Close(context.Context) error {
	s.client.CloseIdleConnections()
	return nil
}
