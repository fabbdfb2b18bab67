// Package rdbc is the relational database connector on database/sql:
// the rdbc sink (insert, upsert, update, deletes of CDC events, optional
// table creation and evolution) and the rdbc source (bulk, incrementing,
// timestamp and timestamp+incrementing polling, the Kafka Connect JDBC
// model), with sql_insert and sql_select as their batch forms. PostgreSQL
// goes through pgx's database/sql driver, MySQL and MariaDB through
// go-sql-driver/mysql; a dialect holds what differs.
package rdbc

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/metric"
	"github.com/rivven/rivven-connect/shared/sqlrow"
)

// Metric names.
const (
	metricRows     = "rdbc.rows_written"
	metricDeleted  = "rdbc.rows_deleted"
	metricFailed   = "rdbc.rows_failed"
	metricSkipped  = "rdbc.events_skipped"
	metricBatches  = "rdbc.batches_written"
	metricCreated  = "rdbc.tables_changed"
	metricRead     = "rdbc.rows_read"
	metricPolls    = "rdbc.polls"
	metricDuration = "rdbc.batch_duration_seconds"
)

func init() {
	catalog.RegisterSink[SinkConfig](catalog.Meta{
		Name:        "rdbc-sink",
		Aliases:     []string{"rdbc", "jdbc", "jdbc-sink"},
		Category:    catalog.Database,
		Subcategory: "RDBC",
		Description: "Writes events as rows to PostgreSQL, MySQL or MariaDB tables (database/sql): insert, upsert (ON CONFLICT / ON DUPLICATE KEY UPDATE) or update by key, deletes of CDC events, optional table creation and column evolution; a row that does not fit goes to the dead-letter topic.",
		Tags:        []string{"sql", "jdbc", "postgres", "postgresql", "mysql", "mariadb", "upsert", "replica"},
		Metrics:     []string{metricRows, metricDeleted, metricFailed, metricSkipped, metricBatches, metricCreated, metricDuration},
	}, func(ctx context.Context, c *SinkConfig) (connector.Sink, error) { return NewSink(ctx, c) })
	catalog.RegisterSink[InsertConfig](catalog.Meta{
		Name:        "sql_insert",
		Category:    catalog.Database,
		Subcategory: "Batch",
		Description: "Batch form of the rdbc sink: multi-row INSERTs of every event into one table, one transaction per batch.",
		Tags:        []string{"sql", "insert", "batch", "postgres", "mysql", "mariadb"},
		Metrics:     []string{metricRows, metricFailed, metricSkipped, metricBatches, metricCreated, metricDuration},
		LegacyOf:    "rdbc-sink",
	}, func(ctx context.Context, c *InsertConfig) (connector.Sink, error) { return NewSink(ctx, c.sink()) })
}

// Sink writes events to tables.
type Sink struct {
	cfg SinkConfig
	db  *sql.DB
	d   dialect

	mu     sync.Mutex
	tables map[string]*tableInfo

	rows, deleted, failed, skipped, batches, changed *metric.Counter
	duration                                         *metric.Histogram
}

// NewSink opens the pool; it connects on first use (Check or Write).
func NewSink(ctx context.Context, cfg *SinkConfig) (*Sink, error) {
	db, d, err := openDB(cfg.Conn)
	if err != nil {
		return nil, connector.Fatal(fmt.Errorf("url: %w", err))
	}
	rt := connector.RuntimeFrom(ctx)
	return &Sink{
		cfg: *cfg, db: db, d: d, tables: map[string]*tableInfo{},
		rows:     rt.Counter(metricRows, "Rows inserted, upserted or updated."),
		deleted:  rt.Counter(metricDeleted, "Rows deleted by delete events."),
		failed:   rt.Counter(metricFailed, "Events that went to the dead-letter topic."),
		skipped:  rt.Counter(metricSkipped, "Events without a row to write (schema, state, truncate; deletes without delete.enabled)."),
		batches:  rt.Counter(metricBatches, "Batches committed."),
		changed:  rt.Counter(metricCreated, "Tables created or altered (auto_create, auto_evolve)."),
		duration: rt.Histogram(metricDuration, "Seconds a batch took to write.", metric.LatencySeconds),
	}, nil
}

// BatchPolicy asks long-lived runners for batches of batch_size events.
func (s *Sink) BatchPolicy() (int, time.Duration) {
	return s.cfg.BatchSize, time.Duration(s.cfg.FlushIntervalSecs) * time.Second
}

// Close closes the pool.
func (s *Sink) Close(context.Context) error { return s.db.Close() }

// Check connects and, when the table name is fixed, checks that the
// table exists (or may be created) and that this user may write it the
// way the mode needs: statements that touch no row (WHERE 1=0) check
// the INSERT, UPDATE and DELETE privileges without changing anything.
func (s *Sink) Check(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("rdbc: connect: %w", sqlrow.Classify(err))
	}
	if strings.Contains(s.cfg.Table, "{") {
		return nil
	}
	t, err := describe(ctx, s.db, s.d, s.cfg.Table)
	if err != nil {
		return fmt.Errorf("rdbc: read table %s: %w", s.cfg.Table, sqlrow.Classify(err))
	}
	if t == nil {
		if s.cfg.AutoCreate {
			return nil
		}
		return fmt.Errorf("rdbc: table %s does not exist (create it, or set auto_create: true)", s.cfg.Table)
	}
	q := s.d.Quote(s.cfg.Table)
	c := s.d.Quote(t.Columns[0].Name)
	all := make([]string, len(t.Columns))
	for i, col := range t.Columns {
		all[i] = s.d.Quote(col.Name)
	}
	// Every column: MariaDB refuses a column list that leaves out a NOT
	// NULL column without default even when no row would be inserted.
	cols := strings.Join(all, ", ")
	probes := []string{fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s WHERE 1=0", q, cols, cols, q)}
	if s.cfg.Mode != ModeInsert {
		probes = append(probes, fmt.Sprintf("UPDATE %s SET %s = %s WHERE 1=0", q, c, c))
	}
	if s.cfg.Delete.Enabled {
		probes = append(probes, fmt.Sprintf("DELETE FROM %s WHERE 1=0", q))
	}
	for _, p := range probes {
		if _, err := s.db.ExecContext(ctx, p); err != nil {
			return fmt.Errorf("rdbc: table %s: %s: %w", s.cfg.Table, strings.Fields(p)[0], sqlrow.Classify(err))
		}
	}
	if s.cfg.Mode != ModeInsert || s.cfg.Delete.Enabled {
		if len(s.cfg.PKFields) == 0 && len(t.PK) == 0 {
			connector.RuntimeFrom(ctx).Logger().Warn("rdbc: table has no primary key; upsert, update and delete need pk_fields or event keys", "table", s.cfg.Table)
		}
	}
	return nil
}

// opKind is what a row does.
type opKind int

const (
	opInsert opKind = iota
	opUpsert
	opUpdate
	opDelete
)

// op is one statement's worth of one event.
type op struct {
	idx   int
	kind  opKind
	table *tableInfo
	cols  []string // sorted; for deletes the key columns
	vals  []any    // by cols
	key   []string // key columns (upsert conflict target, update/delete WHERE)
	kvals []any    // key values (update, delete)
	sig   string   // table + kind + cols: ops with the same sig share a statement
}

// Write writes a batch in one transaction. Rows whose values do not fit
// their columns are found by writing them again one by one under
// savepoints, and reported in a *connector.WriteError; the rest commit.
func (s *Sink) Write(ctx context.Context, batch []*events.Event) error {
	start := time.Now()
	failed := map[int]error{}
	var ops []op
	for i, e := range batch {
		o, err := s.plan(ctx, i, e)
		switch {
		case errors.Is(err, connector.ErrFatal):
			return err
		case err != nil:
			var fe *fatalTable
			if errors.As(err, &fe) {
				return err
			}
			failed[i] = err
		default:
			if len(o) == 0 {
				s.skipped.Inc()
			}
			ops = append(ops, o...)
		}
	}
	err := s.exec(ctx, ops, nil)
	if err != nil {
		if !sqlrow.RowError(err) && !errors.Is(err, errNoRow) {
			return sqlrow.Classify(err)
		}
		// Find the bad rows: again, one by one.
		err = s.exec(ctx, ops, failed)
		if err != nil {
			return sqlrow.Classify(err)
		}
	}
	var written, deleted int
	for _, o := range ops {
		if _, bad := failed[o.idx]; bad {
			continue
		}
		if o.kind == opDelete {
			deleted++
		} else {
			written++
		}
	}
	s.rows.Add(uint64(written))
	s.deleted.Add(uint64(deleted))
	s.batches.Inc()
	s.duration.Observe(time.Since(start).Seconds())
	if len(failed) > 0 {
		s.failed.Add(uint64(len(failed)))
		return &connector.WriteError{Failed: failed}
	}
	return nil
}

// fatalTable is a problem with a table, not a row: every event for it
// would fail the same way.
type fatalTable struct{ err error }

func (f *fatalTable) Error() string { return f.err.Error() }
func (f *fatalTable) Unwrap() error { return f.err }

// tableName resolves the table template for e.
func (s *Sink) tableName(e *events.Event) string {
	t := s.cfg.Table
	if !strings.Contains(t, "{") {
		return t
	}
	table, schema := e.Stream, e.NamespaceOr("")
	if e.Source != nil {
		if e.Source.Table != "" {
			table = e.Source.Table
		}
		if e.Source.Schema != "" {
			schema = e.Source.Schema
		} else if e.Source.Database != "" && schema == "" {
			schema = e.Source.Database
		}
	}
	return strings.NewReplacer("{table}", table, "{stream}", e.Stream, "{schema}", schema).Replace(t)
}

// plan turns one event into its ops: none (nothing to write), one, or a
// delete of the old key then the write of the new one when an update
// changed the key.
func (s *Sink) plan(ctx context.Context, i int, e *events.Event) ([]op, error) {
	if !e.Type.IsData() {
		return nil, nil
	}
	if e.Type == events.Delete && !s.cfg.Delete.Enabled {
		return nil, nil
	}
	row, err := e.Row()
	if err != nil {
		return nil, err
	}
	if row == nil && e.Type != events.Delete {
		return nil, fmt.Errorf("%s event has no row", e.Type)
	}
	name := s.tableName(e)
	keyFields := s.keyFields(e)
	t, err := s.table(ctx, name, e, row, keyFields)
	if err != nil {
		return nil, err
	}
	if len(keyFields) == 0 {
		keyFields = t.PK
	}
	needKey := e.Type == events.Delete || s.cfg.Mode != ModeInsert
	if needKey && len(keyFields) == 0 {
		return nil, fmt.Errorf("no key for table %s: set pk_fields, give the events keys or the table a primary key", name)
	}
	for _, k := range keyFields {
		if t.col(k) == nil {
			return nil, fmt.Errorf("key column %s does not exist in table %s", k, name)
		}
	}
	if e.Type == events.Delete {
		kv, err := s.keyValues(e, row, keyFields, t)
		if err != nil {
			return nil, err
		}
		return []op{s.newOp(i, opDelete, t, keyFields, kv, keyFields, kv)}, nil
	}

	if err := s.evolve(ctx, t, e, row); err != nil {
		return nil, err
	}
	cols := make([]string, 0, len(row))
	for c := range row {
		cols = append(cols, c)
	}
	sort.Strings(cols)
	vals := make([]any, len(cols))
	for j, c := range cols {
		col := t.col(c)
		if col == nil {
			return nil, fmt.Errorf("column %s does not exist in table %s (set auto_evolve: true to add it)", c, name)
		}
		if vals[j], err = sqlrow.Bind(s.d, col, row[c]); err != nil {
			return nil, err
		}
	}
	var out []op
	kind := opInsert
	switch s.cfg.Mode {
	case ModeUpsert:
		kind = opUpsert
	case ModeUpdate:
		kind = opUpdate
	}
	var kv []any
	if kind != opInsert {
		if kv, err = s.keyValues(e, row, keyFields, t); err != nil {
			return nil, err
		}
		// An update that changed the key: the old row goes first.
		if e.Type == events.Update {
			if before, _ := e.Before(); before != nil {
				old, err := s.keyValues(nil, before, keyFields, t)
				if err == nil && !sameValues(old, kv) {
					out = append(out, s.newOp(i, opDelete, t, keyFields, old, keyFields, old))
				}
			}
		}
	}
	if kind == opUpdate {
		// SET the non-key columns.
		var setCols []string
		var setVals []any
		for j, c := range cols {
			if !contains(keyFields, c) {
				setCols, setVals = append(setCols, c), append(setVals, vals[j])
			}
		}
		cols, vals = setCols, setVals
		if len(cols) == 0 {
			return out, nil
		}
	}
	return append(out, s.newOp(i, kind, t, cols, vals, keyFields, kv)), nil
}

func (s *Sink) newOp(i int, k opKind, t *tableInfo, cols []string, vals []any, key []string, kv []any) op {
	sig := fmt.Sprintf("%d\x00%s\x00%s\x00%s", k, t.Name, strings.Join(cols, "\x00"), strings.Join(key, "\x00"))
	return op{idx: i, kind: k, table: t, cols: cols, vals: vals, key: key, kvals: kv, sig: sig}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func sameValues(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if fmt.Sprint(a[i]) != fmt.Sprint(b[i]) {
			return false
		}
	}
	return true
}

// keyFields are pk_fields, else the fields of the event's key object.
func (s *Sink) keyFields(e *events.Event) []string {
	if len(s.cfg.PKFields) > 0 {
		return s.cfg.PKFields
	}
	return sqlrow.KeyFields(e.Key)
}

// keyValues takes the key's values from the row, else from the event's key.
func (s *Sink) keyValues(e *events.Event, row map[string]any, keys []string, t *tableInfo) ([]any, error) {
	var key map[string]any
	out := make([]any, len(keys))
	for i, k := range keys {
		v, ok := row[k]
		if !ok && e != nil && len(e.Key) > 0 {
			if key == nil {
				d := json.NewDecoder(strings.NewReader(string(e.Key)))
				d.UseNumber()
				_ = d.Decode(&key)
			}
			v, ok = key[k]
		}
		if !ok || v == nil {
			return nil, fmt.Errorf("key column %s has no value", k)
		}
		b, err := sqlrow.Bind(s.d, t.col(k), v)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// table returns the target table's description, creating the table when
// it is missing and auto_create is on.
func (s *Sink) table(ctx context.Context, name string, e *events.Event, row map[string]any, key []string) (*tableInfo, error) {
	s.mu.Lock()
	t := s.tables[name]
	s.mu.Unlock()
	if t != nil {
		return t, nil
	}
	t, err := describe(ctx, s.db, s.d, name)
	if err != nil {
		return nil, &fatalTable{fmt.Errorf("read table %s: %w", name, sqlrow.Classify(err))}
	}
	if t == nil {
		if !s.cfg.AutoCreate {
			return nil, &fatalTable{connector.Fatal(fmt.Errorf("table %s does not exist (create it, or set auto_create: true)", name))}
		}
		if row == nil {
			return nil, fmt.Errorf("table %s does not exist and a delete cannot create it", name)
		}
		ddl := createTable(s.d, name, e, row, key)
		if _, err := s.db.ExecContext(ctx, ddl); err != nil {
			// Another instance may have created it meanwhile.
			if t2, _ := describe(ctx, s.db, s.d, name); t2 == nil {
				return nil, &fatalTable{fmt.Errorf("create table %s: %w", name, sqlrow.Classify(err))}
			}
		} else {
			s.changed.Inc()
			connector.RuntimeFrom(ctx).Logger().Info("rdbc: created table", "table", name, "ddl", ddl)
		}
		if t, err = describe(ctx, s.db, s.d, name); err != nil || t == nil {
			return nil, &fatalTable{fmt.Errorf("read table %s after creating it: %v", name, err)}
		}
	}
	s.mu.Lock()
	s.tables[name] = t
	s.mu.Unlock()
	return t, nil
}

// evolve adds the row's columns the table lacks, when auto_evolve is on.
func (s *Sink) evolve(ctx context.Context, t *tableInfo, e *events.Event, row map[string]any) error {
	if !s.cfg.AutoEvolve {
		return nil
	}
	var missing []string
	for c := range row {
		if t.col(c) == nil {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	types := sourceTypes(e)
	for _, c := range missing {
		ddl := fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s", s.d.Quote(t.Name), colDef(s.d, c, types[c], row[c], false))
		if _, err := s.db.ExecContext(ctx, ddl); err != nil {
			// Added meanwhile by another instance? Re-read and see.
			if t2, _ := describe(ctx, s.db, s.d, t.Name); t2 == nil || t2.col(c) == nil {
				return &fatalTable{fmt.Errorf("add column %s to %s: %w", c, t.Name, sqlrow.Classify(err))}
			}
			continue
		}
		s.changed.Inc()
		connector.RuntimeFrom(ctx).Logger().Info("rdbc: added column", "table", t.Name, "ddl", ddl)
	}
	t2, err := describe(ctx, s.db, s.d, t.Name)
	if err != nil || t2 == nil {
		return &fatalTable{fmt.Errorf("read table %s after altering it: %v", t.Name, err)}
	}
	*t = *t2
	s.mu.Lock()
	s.tables[t.Name] = t
	s.mu.Unlock()
	return nil
}

// maxParams bounds one statement's parameters (both protocols allow
// 65535; statements far below that parse faster).
const maxParams = 16384

// exec runs ops in one transaction. With isolate == nil consecutive ops
// of one shape share multi-row statements and the first error returns;
// with isolate != nil each op runs under its own savepoint, an op whose
// error is about its row is rolled back and recorded in isolate, and
// anything else returns.
func (s *Sink) exec(ctx context.Context, ops []op, isolate map[int]error) error {
	if len(ops) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if isolate == nil {
		for i := 0; i < len(ops); {
			j := i + 1
			if ops[i].kind == opInsert || ops[i].kind == opUpsert {
				seen := map[string]bool{keyString(ops[i]): true}
				for j < len(ops) && ops[j].sig == ops[i].sig && (j-i+1)*len(ops[i].cols) <= maxParams {
					// One statement cannot touch a key twice (PostgreSQL
					// refuses, and the order between the two would be lost).
					k := keyString(ops[j])
					if ops[i].kind == opUpsert && seen[k] {
						break
					}
					seen[k] = true
					j++
				}
			}
			q, args := s.statement(ops[i:j])
			res, err := tx.ExecContext(ctx, q, args...)
			if err != nil {
				return err
			}
			if ops[i].kind == opUpdate {
				if n, _ := res.RowsAffected(); n == 0 {
					return errNoRow
				}
			}
			i = j
		}
		return tx.Commit()
	}
	for _, o := range ops {
		if _, bad := isolate[o.idx]; bad {
			continue // an earlier op of the same event failed
		}
		if _, err := tx.ExecContext(ctx, "SAVEPOINT rivven_row"); err != nil {
			return err
		}
		q, args := s.statement([]op{o})
		res, err := tx.ExecContext(ctx, q, args...)
		if err == nil && o.kind == opUpdate {
			if n, _ := res.RowsAffected(); n == 0 {
				err = errNoRow
			}
		}
		switch {
		case err == nil:
			if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT rivven_row"); err != nil {
				return err
			}
		case errors.Is(err, errNoRow) || sqlrow.RowError(err):
			isolate[o.idx] = fmt.Errorf("table %s: %w", o.table.Name, err)
			if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT rivven_row"); err != nil {
				return err
			}
		default:
			return err
		}
	}
	return tx.Commit()
}

var errNoRow = errors.New("update mode: no row has this key")

func keyString(o op) string {
	if len(o.key) == 0 {
		return fmt.Sprint(o.vals...)
	}
	vals := make([]any, 0, len(o.key))
	for _, k := range o.key {
		for j, c := range o.cols {
			if c == k {
				vals = append(vals, o.vals[j])
			}
		}
	}
	return fmt.Sprintf("%q", vals)
}

// statement renders the statement for ops of one shape.
func (s *Sink) statement(ops []op) (string, []any) {
	o := ops[0]
	q := s.d.Quote(o.table.Name)
	var b strings.Builder
	var args []any
	n := 0
	next := func(v any) string {
		n++
		args = append(args, v)
		return s.d.Placeholder(n)
	}
	where := func(kv []any) {
		for j, k := range o.key {
			if j > 0 {
				b.WriteString(" AND ")
			}
			b.WriteString(s.d.Quote(k) + " = " + next(kv[j]))
		}
	}
	switch o.kind {
	case opDelete:
		fmt.Fprintf(&b, "DELETE FROM %s WHERE ", q)
		where(o.kvals)
	case opUpdate:
		fmt.Fprintf(&b, "UPDATE %s SET ", q)
		for j, c := range o.cols {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString(s.d.Quote(c) + " = " + next(o.vals[j]))
		}
		b.WriteString(" WHERE ")
		where(o.kvals)
	default:
		cols := make([]string, len(o.cols))
		for j, c := range o.cols {
			cols[j] = s.d.Quote(c)
		}
		fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES ", q, strings.Join(cols, ", "))
		for r, op := range ops {
			if r > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			for j, v := range op.vals {
				if j > 0 {
					b.WriteString(", ")
				}
				b.WriteString(next(v))
			}
			b.WriteByte(')')
		}
		if o.kind == opUpsert {
			var sets []string
			for j, c := range o.cols {
				if contains(o.key, c) {
					continue
				}
				if s.d == postgres {
					sets = append(sets, cols[j]+" = EXCLUDED."+cols[j])
				} else {
					sets = append(sets, cols[j]+" = VALUES("+cols[j]+")")
				}
			}
			keys := make([]string, len(o.key))
			for j, k := range o.key {
				keys[j] = s.d.Quote(k)
			}
			switch {
			case s.d == postgres && len(sets) == 0:
				fmt.Fprintf(&b, " ON CONFLICT (%s) DO NOTHING", strings.Join(keys, ", "))
			case s.d == postgres:
				fmt.Fprintf(&b, " ON CONFLICT (%s) DO UPDATE SET %s", strings.Join(keys, ", "), strings.Join(sets, ", "))
			case len(sets) == 0:
				fmt.Fprintf(&b, " ON DUPLICATE KEY UPDATE %s = %s", keys[0], keys[0])
			default:
				fmt.Fprintf(&b, " ON DUPLICATE KEY UPDATE %s", strings.Join(sets, ", "))
			}
		}
	}
	return b.String(), args
}
