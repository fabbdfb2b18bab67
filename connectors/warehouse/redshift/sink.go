// Package redshift is the Amazon Redshift sink: batches of events written
// over the PostgreSQL wire protocol (pgx) into one table, as multi-row
// INSERTs for small batches and, for large ones, as a gzip JSON Lines
// file staged in S3 and loaded with COPY; upserts by key through a
// staging table and MERGE (or delete+insert) in one transaction; deletes
// of CDC events by key; rows that do not fit their column dead-lettered
// with the column and reason.
package redshift

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/format"
	"github.com/rivven/rivven-connect/shared/metric"
	"github.com/rivven/rivven-connect/shared/objstore"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/sqlrow"
)

// Metric names, after the other warehouse sinks' (clickhouse).
const (
	metricBatchesOK  = "redshift.batches.success"
	metricBatchesBad = "redshift.batches.failed"
	metricRetried    = "redshift.batches.retried"
	metricWritten    = "redshift.records.written"
	metricDeleted    = "redshift.records.deleted"
	metricFailed     = "redshift.records.failed"
	metricSkipped    = "redshift.events.skipped"
	metricRejected   = "redshift.circuit_breaker.rejected"
	metricBatchSize  = "redshift.batch.size"
	metricDuration   = "redshift.batch.duration_ms"
	metricCopies     = "redshift.copy.loads"
	metricCopyBytes  = "redshift.copy.bytes"
)

func init() {
	catalog.RegisterSink[Config](catalog.Meta{
		Name:        "redshift",
		Category:    catalog.Warehouse,
		Description: "Writes batches into an Amazon Redshift table over the PostgreSQL protocol: multi-row INSERTs, or for large batches a gzip JSON Lines file staged in S3 and COPY … IAM_ROLE … FORMAT AS JSON 'auto'; upserts by key with MERGE or delete+insert through a staging table in one transaction; CDC deletes by key; bad rows to the dead-letter topic with column and reason.",
		Tags:        []string{"redshift", "aws", "warehouse", "copy", "merge", "upsert", "postgres"},
		Metrics: []string{metricBatchesOK, metricBatchesBad, metricRetried, metricWritten, metricDeleted, metricFailed, metricSkipped,
			metricRejected, metricBatchSize, metricDuration, metricCopies, metricCopyBytes},
	}, func(ctx context.Context, c *Config) (connector.Sink, error) { return New(ctx, c) })
}

// Sink writes into one table.
type Sink struct {
	cfg     Config
	db      *sql.DB
	s3      *objstore.S3Writer // nil without the s3 block
	policy  resilience.Policy
	circuit *resilience.Circuit

	// runCopy runs a COPY statement in the batch's transaction; tests
	// replace it with an emulation of Redshift's COPY on PostgreSQL.
	runCopy func(ctx context.Context, tx *sql.Tx, stmt string) error

	mu  sync.Mutex
	tbl *table

	okB, badB, retried, written, deleted, failed, skipped, rejected, copies, copyBytes *metric.Counter
	size                                                                               *metric.Gauge
	duration                                                                           *metric.Histogram
}

// New builds the sink; it connects on Check or the first Write.
func New(ctx context.Context, cfg *Config) (*Sink, error) {
	raw := cfg.URL
	if strings.HasPrefix(raw, "redshift://") {
		raw = "postgres://" + strings.TrimPrefix(raw, "redshift://")
	}
	pc, err := pgx.ParseConfig(raw)
	if err != nil {
		// pgx's error may quote the URL, password included.
		return nil, connector.Fatal(errors.New("redshift: url: not a valid postgres:// URL (check its parameters)"))
	}
	// Values go as text that the server converts by the column's type
	// (exact for numerics and times), and Redshift's extended-protocol
	// support is partial: the simple protocol works on both.
	pc.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	db := stdlib.OpenDB(*pc)
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(5 * time.Minute)
	rt := connector.RuntimeFrom(ctx)
	s := &Sink{cfg: *cfg, db: db,
		policy: resilience.Policy{MaxRetries: cfg.MaxRetries, Initial: time.Duration(cfg.InitialBackoffMs) * time.Millisecond,
			Max: time.Duration(cfg.MaxBackoffMs) * time.Millisecond, Multiplier: 2, Jitter: 0.2},
		circuit:   resilience.NewCircuit(cfg.CircuitBreaker),
		okB:       rt.Counter(metricBatchesOK, "Batches committed."),
		badB:      rt.Counter(metricBatchesBad, "Batches failed (after all retries)."),
		retried:   rt.Counter(metricRetried, "Batch retry attempts."),
		written:   rt.Counter(metricWritten, "Rows inserted or upserted."),
		deleted:   rt.Counter(metricDeleted, "Rows deleted by delete events."),
		failed:    rt.Counter(metricFailed, "Events that went to the dead-letter topic."),
		skipped:   rt.Counter(metricSkipped, "Events without a row to write (schema, state, truncate; deletes without delete.enabled)."),
		rejected:  rt.Counter(metricRejected, "Batches rejected by the open circuit breaker."),
		size:      rt.Gauge(metricBatchSize, "Rows in the last batch."),
		duration:  rt.Histogram(metricDuration, "Milliseconds a batch took end to end.", metric.LatencyMillis),
		copies:    rt.Counter(metricCopies, "Batches loaded with COPY from a staged S3 file."),
		copyBytes: rt.Counter(metricCopyBytes, "Bytes of the staged files (gzip)."),
	}
	s.runCopy = func(ctx context.Context, tx *sql.Tx, stmt string) error {
		_, err := tx.ExecContext(ctx, stmt)
		return err
	}
	if cfg.S3 != nil {
		if s.s3, err = objstore.NewS3Writer(ctx, cfg.S3.Bucket, &cfg.S3.S3Options, 0); err != nil {
			db.Close()
			return nil, fmt.Errorf("redshift: s3: %w", err)
		}
	}
	return s, nil
}

// BatchPolicy asks long-lived runners for batches of batch_size events.
func (s *Sink) BatchPolicy() (int, time.Duration) {
	return s.cfg.BatchSize, time.Duration(s.cfg.FlushIntervalSecs) * time.Second
}

// Close closes the pool.
func (s *Sink) Close(context.Context) error { return s.db.Close() }

// Check connects, reads the table, and probes every privilege the
// configured writes need with statements that touch no row: INSERT (and
// UPDATE, DELETE for upserts and deletes), a temporary staging table, and
// with s3 a PUT and DELETE of a probe object in the staging prefix.
func (s *Sink) Check(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("redshift: connect: %w", classify(err))
	}
	t, err := s.loadTable(ctx)
	if err != nil {
		return fmt.Errorf("redshift: %w", err)
	}
	q := quote(t.name)
	all := make([]string, len(t.cols))
	for i, c := range t.cols {
		all[i] = quote(c.Name)
	}
	cols := strings.Join(all, ", ")
	probes := []string{fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s WHERE 1 = 0", q, cols, cols, q)}
	if s.cfg.Mode == ModeUpsert {
		probes = append(probes, fmt.Sprintf("UPDATE %s SET %s = %s WHERE 1 = 0", q, all[0], all[0]))
	}
	if s.cfg.Mode == ModeUpsert || s.cfg.Delete.Enabled {
		probes = append(probes, fmt.Sprintf("DELETE FROM %s WHERE 1 = 0", q),
			"CREATE TEMP TABLE rivven_check_probe (x INTEGER)")
		if len(s.cfg.PKFields) == 0 && len(t.pk) == 0 {
			connector.RuntimeFrom(ctx).Logger().Warn("redshift: the table has no primary key; upserts and deletes need pk_fields or event keys", "table", t.name)
		}
		for i, k := range s.cfg.PKFields {
			if t.byName[k] == nil {
				return connector.Fatal(fmt.Errorf("redshift: pk_fields[%d]: table %s has no column %s", i, t.name, k))
			}
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("redshift: %w", classify(err))
	}
	defer func() { _ = tx.Rollback() }()
	for _, p := range probes {
		if _, err := tx.ExecContext(ctx, p); err != nil {
			return fmt.Errorf("redshift: table %s: %s: %w", t.name, strings.Join(strings.Fields(p)[:2], " "), classify(err))
		}
	}
	if s.s3 != nil {
		key := s.objectKey("rivven-check-probe")
		if err := s.s3.Put(ctx, key, []byte("{}\n"), "application/x-ndjson", ""); err != nil {
			return fmt.Errorf("redshift: s3: put %s/%s: %w", s.s3.URL(), key, err)
		}
		if err := s.s3.Delete(ctx, key); err != nil {
			return fmt.Errorf("redshift: s3: delete %s/%s: %w", s.s3.URL(), key, err)
		}
	}
	return nil
}

// loadTable reads the target table once (again after a schema error).
func (s *Sink) loadTable(ctx context.Context) (*table, error) {
	s.mu.Lock()
	t := s.tbl
	s.mu.Unlock()
	if t != nil {
		return t, nil
	}
	t, err := describe(ctx, s.db, s.cfg.Table)
	if err != nil {
		return nil, fmt.Errorf("read table %s: %w", s.cfg.Table, classify(err))
	}
	if t == nil {
		return nil, connector.Fatal(fmt.Errorf("table %s does not exist (or this user cannot see it)", s.cfg.Table))
	}
	if s.cfg.Layout == "envelope" {
		for _, n := range format.WarehouseColumns {
			if t.byName[n] == nil {
				return nil, connector.Fatal(fmt.Errorf("layout envelope: table %s lacks the column %s", t.name, n))
			}
		}
	}
	s.mu.Lock()
	s.tbl = t
	s.mu.Unlock()
	return t, nil
}

// op is what one event does to one key: write a row, or delete one.
type op struct {
	idx  int
	del  bool
	vals map[string]any // column → checked value (JSON for staging)
	args map[string]any // column → SQL parameter
	keys []string       // the key columns (upserts and deletes)
	key  string         // the key's values, for collapsing upserts
}

// Write writes the batch in one transaction. Rows that do not fit their
// columns are found before anything is sent; a row the server still
// refuses is found by writing halves of the batch until it is alone.
// Either way it goes to the dead-letter topic and the rest is written.
func (s *Sink) Write(ctx context.Context, batch []*events.Event) error {
	start := time.Now()
	if !s.circuit.Allow() {
		s.rejected.Inc()
		return resilience.Errorf(resilience.Connection, "redshift: circuit breaker open after %d consecutive failures", s.cfg.CircuitBreaker.FailureThreshold)
	}
	t, err := s.loadTable(ctx)
	if err != nil {
		s.circuit.Done(false)
		s.badB.Inc()
		return fmt.Errorf("redshift: %w", err)
	}
	failed := map[int]error{}
	var ops []op
	now := time.Now().UTC()
	for i, e := range batch {
		o, err := s.plan(t, i, e, now)
		if err != nil {
			failed[i] = err
			continue
		}
		if len(o) == 0 {
			s.skipped.Inc()
		}
		ops = append(ops, o...)
	}
	s.size.Set(float64(len(ops)))
	if err := s.apply(ctx, t, ops, failed); err != nil {
		s.circuit.Done(false)
		s.badB.Inc()
		if resilience.ClassOf(err) == resilience.Schema {
			s.mu.Lock()
			s.tbl = nil // the table changed: read it again
			s.mu.Unlock()
		}
		return fmt.Errorf("redshift: write to %s: %w", t.name, err)
	}
	s.circuit.Done(true)
	s.okB.Inc()
	var written, deleted uint64
	for _, o := range ops {
		if _, bad := failed[o.idx]; bad {
			continue
		}
		if o.del {
			deleted++
		} else {
			written++
		}
	}
	s.written.Add(written)
	s.deleted.Add(deleted)
	s.duration.Observe(float64(time.Since(start).Microseconds()) / 1000)
	if len(failed) > 0 {
		s.failed.Add(uint64(len(failed)))
		return &connector.WriteError{Failed: failed}
	}
	return nil
}

// plan turns one event into its ops: none, a row, a delete, or for an
// update that changed the key the old key's delete and the new row.
func (s *Sink) plan(t *table, i int, e *events.Event, now time.Time) ([]op, error) {
	if s.cfg.Layout == "envelope" {
		row, err := envelopeRow(e, now)
		if err != nil {
			return nil, err
		}
		o, err := s.rowOp(t, i, row, nil)
		return []op{o}, err
	}
	if !e.Type.IsData() {
		return nil, nil
	}
	keyed := s.cfg.Mode == ModeUpsert || s.cfg.Delete.Enabled
	var keys []string
	if keyed {
		keys = s.keyFields(t, e)
		if len(keys) == 0 {
			return nil, fmt.Errorf("no key for table %s: set pk_fields, give the events keys or the table a primary key", t.name)
		}
		for _, k := range keys {
			if t.byName[k] == nil {
				return nil, fmt.Errorf("key column %s does not exist in table %s", k, t.name)
			}
		}
	}
	if e.Type == events.Delete {
		if !s.cfg.Delete.Enabled {
			return nil, nil
		}
		row, err := e.Row()
		if err != nil {
			return nil, err
		}
		o, err := s.deleteOp(t, i, e, row, keys)
		return []op{o}, err
	}
	row, err := e.After()
	if err != nil {
		return nil, err
	}
	if row == nil {
		return nil, fmt.Errorf("%s event has no row", e.Type)
	}
	var out []op
	if keyed && e.Type == events.Update {
		// An update that changed the key: the old row goes first.
		if before, _ := e.Before(); before != nil {
			if old, err := s.deleteOp(t, i, nil, before, keys); err == nil {
				if nw, err := s.deleteOp(t, i, e, row, keys); err == nil && nw.key != old.key {
					out = append(out, old)
				}
			}
		}
	}
	o, err := s.rowOp(t, i, row, keys)
	if err != nil {
		return nil, err
	}
	if keyed {
		if o.key, err = s.keyString(e, o.vals, keys, t); err != nil {
			return nil, err
		}
	}
	return append(out, o), nil
}

// rowOp checks a row's fields against their columns. Fields without a
// column are left out, as the other warehouse sinks do.
func (s *Sink) rowOp(t *table, i int, row map[string]any, keys []string) (op, error) {
	o := op{idx: i, keys: keys, vals: make(map[string]any, len(row)), args: make(map[string]any, len(row))}
	for _, c := range t.cols {
		v, ok := row[c.Name]
		if !ok {
			if !c.Nullable && isKey(keys, c.Name) {
				return op{}, fmt.Errorf("column %s: the key has no value", c.Name)
			}
			continue
		}
		sv, bv, err := c.check(v)
		if err != nil {
			return op{}, err
		}
		o.vals[c.Name], o.args[c.Name] = sv, bv
	}
	if len(o.vals) == 0 {
		return op{}, fmt.Errorf("no field of the row is a column of table %s", t.name)
	}
	return o, nil
}

// deleteOp is the delete of row's key (taken from the row, else from the
// event's key).
func (s *Sink) deleteOp(t *table, i int, e *events.Event, row map[string]any, keys []string) (op, error) {
	o := op{idx: i, del: true, keys: keys, vals: map[string]any{}, args: map[string]any{}}
	var ek map[string]any
	for _, k := range keys {
		v, ok := row[k]
		if !ok && e != nil && len(e.Key) > 0 {
			if ek == nil {
				d := json.NewDecoder(strings.NewReader(string(e.Key)))
				d.UseNumber()
				_ = d.Decode(&ek)
			}
			v, ok = ek[k]
		}
		if !ok || v == nil {
			return op{}, fmt.Errorf("key column %s has no value", k)
		}
		sv, bv, err := t.byName[k].check(v)
		if err != nil {
			return op{}, err
		}
		o.vals[k], o.args[k] = sv, bv
	}
	var err error
	o.key, err = s.keyString(nil, o.vals, keys, t)
	return o, err
}

// keyString is the key's checked values, comparable between ops.
func (s *Sink) keyString(e *events.Event, vals map[string]any, keys []string, t *table) (string, error) {
	parts := make([]any, len(keys))
	for j, k := range keys {
		v, ok := vals[k]
		if !ok || v == nil {
			return "", fmt.Errorf("key column %s has no value", k)
		}
		parts[j] = v
	}
	b, err := json.Marshal(parts)
	return string(b), err
}

func isKey(keys []string, c string) bool {
	for _, k := range keys {
		if k == c {
			return true
		}
	}
	return false
}

// keyFields are pk_fields, else the fields of the event's key object,
// else the table's primary key.
func (s *Sink) keyFields(t *table, e *events.Event) []string {
	if len(s.cfg.PKFields) > 0 {
		return s.cfg.PKFields
	}
	if ks := sqlrow.KeyFields(e.Key); len(ks) > 0 {
		return ks
	}
	return t.pk
}

// envelopeRow is the reference's warehouse row.
func envelopeRow(e *events.Event, now time.Time) (map[string]any, error) {
	r, err := format.WarehouseRow(e, now)
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(r))
	for k, v := range r {
		out[k] = v
	}
	return out, nil
}

// apply writes ops, retrying transient failures; when the server refuses
// a row, the ops are written in halves (each its own transaction, in
// order) until the refused row is alone and dead-lettered.
func (s *Sink) apply(ctx context.Context, t *table, ops []op, failed map[int]error) error {
	if len(ops) == 0 {
		return nil
	}
	err := resilience.Do(ctx, s.policy, func(ctx context.Context) error {
		return classify(s.writeTx(ctx, t, ops))
	}, resilience.OnRetry(func(int, error, time.Duration) { s.retried.Inc() }))
	if err == nil || !rowRefused(err) {
		return err
	}
	if ops[0].idx == ops[len(ops)-1].idx {
		// One event's ops: that event is the bad row.
		failed[ops[0].idx] = fmt.Errorf("refused by the server: %w", err)
		return nil
	}
	// Split between events, never inside one.
	mid := len(ops) / 2
	for mid > 0 && ops[mid-1].idx == ops[mid].idx {
		mid--
	}
	if mid == 0 {
		mid = len(ops) / 2
		for mid < len(ops) && ops[mid-1].idx == ops[mid].idx {
			mid++
		}
	}
	if err := s.apply(ctx, t, ops[:mid], failed); err != nil {
		return err
	}
	return s.apply(ctx, t, ops[mid:], failed)
}

// rowRefused: the server refused the data of some row (a value, a
// constraint), or a COPY failed on a row (Redshift reports that as an
// internal error pointing at its load error tables).
func rowRefused(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code == "42703" {
		// An undefined column means the table changed under the sink:
		// a schema error, after which the table is read again.
		return false
	}
	return sqlrow.RowError(err) || strings.Contains(pe.Message, "stl_load_errors") || strings.Contains(pe.Message, "sys_load_error_detail")
}

// classify marks what retrying cannot fix: row errors (found by halving
// instead), authorization and schema errors. Serialization conflicts,
// lost connections and shutting-down servers are retried.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case rowRefused(err):
			return resilience.New(resilience.Schema, err)
		case strings.HasPrefix(pe.Code, "40"), strings.HasPrefix(pe.Code, "08"), strings.HasPrefix(pe.Code, "53"),
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03":
			return resilience.New(resilience.Connection, err)
		}
		return sqlrow.Classify(err)
	}
	return err
}

func quote(name string) string { return sqlrow.Postgres.Quote(name) }
