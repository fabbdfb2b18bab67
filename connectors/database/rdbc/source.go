package rdbc

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/metric"
	"github.com/rivven/rivven-connect/shared/sqlrow"
)

func init() {
	catalog.RegisterSource[SourceConfig](catalog.Meta{
		Name:        "rdbc-source",
		Aliases:     []string{"rdbc", "jdbc", "jdbc-source"},
		Category:    catalog.Database,
		Subcategory: "RDBC",
		Description: "Polls PostgreSQL, MySQL or MariaDB tables or a query (database/sql) in bulk, incrementing, timestamp or timestamp+incrementing mode (the Kafka Connect JDBC model), resuming from the committed position.",
		Tags:        []string{"sql", "jdbc", "postgres", "postgresql", "mysql", "mariadb", "polling", "incremental"},
		Metrics:     []string{metricRead, metricPolls},
	}, func(ctx context.Context, c *SourceConfig) (connector.Source, error) { return NewSource(ctx, c) })
	catalog.RegisterSource[SelectConfig](catalog.Meta{
		Name:        "sql_select",
		Category:    catalog.Database,
		Subcategory: "Batch",
		Description: "Batch form of the rdbc source: runs one SELECT once, emits its rows and stops.",
		Tags:        []string{"sql", "select", "batch", "postgres", "mysql", "mariadb"},
		Metrics:     []string{metricRead, metricPolls},
	}, func(ctx context.Context, c *SelectConfig) (connector.Source, error) {
		return NewSource(ctx, c.source())
	})
}

// Source polls tables or a query.
type Source struct {
	cfg         SourceConfig
	db          *sql.DB
	d           dialect
	read, polls *metric.Counter
}

// NewSource opens the pool; it connects on first use.
func NewSource(ctx context.Context, cfg *SourceConfig) (*Source, error) {
	db, d, err := openDB(cfg.Conn)
	if err != nil {
		return nil, connector.Fatal(fmt.Errorf("url: %w", err))
	}
	rt := connector.RuntimeFrom(ctx)
	return &Source{cfg: *cfg, db: db, d: d,
		read:  rt.Counter(metricRead, "Rows read and emitted."),
		polls: rt.Counter(metricPolls, "Polls of a table or query."),
	}, nil
}

// Close closes the pool.
func (s *Source) Close(context.Context) error { return s.db.Close() }

// streamPos is where one table's (or the query's) reading stands.
type streamPos struct {
	TS  string `json:"ts,omitempty"`
	Inc string `json:"inc,omitempty"`
	// Below counts the rows at or below Inc when it was last read
	// (incrementing mode's monotonic check).
	Below int64 `json:"below,omitempty"`
}

// stream is one table or the query.
type stream struct {
	name  string // the events' stream
	from  string // FROM clause
	table string // schema.table as configured; "" for the query
	info  *tableInfo
}

// Check connects and checks every table: it exists, has the mode's
// columns, and they lead an index (require_index).
func (s *Source) Check(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("rdbc: connect: %w", sqlrow.Classify(err))
	}
	_, err := s.streams(ctx)
	return err
}

func (s *Source) streams(ctx context.Context) ([]*stream, error) {
	if s.cfg.Query != "" {
		q := strings.TrimRight(strings.TrimSpace(s.cfg.Query), ";")
		// Probe the query (and that the mode's columns are in it).
		rows, err := s.db.QueryContext(ctx, "SELECT * FROM ("+q+") rivven_q WHERE 1=0")
		if err != nil {
			return nil, connector.Fatal(fmt.Errorf("rdbc: query: %w", sqlrow.Classify(err)))
		}
		names, _ := rows.Columns()
		rows.Close()
		for _, c := range []string{s.cfg.IncrementingColumn, s.cfg.TimestampColumn} {
			if c != "" && !contains(names, c) {
				return nil, connector.Fatal(fmt.Errorf("rdbc: query has no column %s", c))
			}
		}
		return []*stream{{name: s.cfg.QueryStream, from: "(" + q + ") rivven_q"}}, nil
	}
	var out []*stream
	for _, t := range s.cfg.Tables {
		info, err := describe(ctx, s.db, s.d, t)
		if err != nil {
			return nil, fmt.Errorf("rdbc: read table %s: %w", t, sqlrow.Classify(err))
		}
		if info == nil {
			return nil, connector.Fatal(fmt.Errorf("rdbc: table %s does not exist", t))
		}
		for _, c := range []string{s.cfg.IncrementingColumn, s.cfg.TimestampColumn} {
			if c == "" {
				continue
			}
			col := info.col(c)
			if col == nil {
				return nil, connector.Fatal(fmt.Errorf("rdbc: table %s has no column %s", t, c))
			}
			if s.cfg.RequireIndex && !info.Indexed[c] {
				return nil, connector.Fatal(fmt.Errorf("rdbc: column %s of table %s is not the first column of any index: every poll would scan the whole table (add an index, or set require_index: false)", c, t))
			}
			if c == s.cfg.IncrementingColumn && col.Nullable && s.cfg.RequireIndex {
				return nil, connector.Fatal(fmt.Errorf("rdbc: incrementing column %s of table %s is nullable: rows with NULL would never be read (make it NOT NULL, or set require_index: false)", c, t))
			}
		}
		_, name := splitName(t)
		out = append(out, &stream{name: name, from: s.d.Quote(t), table: t, info: info})
	}
	return out, nil
}

// Read polls every stream until it is caught up, then waits
// poll_interval_ms and polls again (poll_interval_ms 0: once).
func (s *Source) Read(ctx context.Context, resume []byte, emit connector.Emitter) error {
	state := map[string]*streamPos{}
	if len(resume) > 0 {
		if err := json.Unmarshal(resume, &state); err != nil {
			return connector.Fatal(fmt.Errorf("rdbc: stored position %q is not this source's: %w", resume, err))
		}
	}
	streams, err := s.streams(ctx)
	if err != nil {
		return err
	}
	for {
		for _, st := range streams {
			p := state[st.name]
			if p == nil {
				p = &streamPos{}
				state[st.name] = p
			}
			if err := s.poll(ctx, st, p, state, emit); err != nil {
				return err
			}
		}
		if s.cfg.PollIntervalMs == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Duration(s.cfg.PollIntervalMs) * time.Millisecond):
		}
	}
}

// poll reads one stream until it is caught up.
func (s *Source) poll(ctx context.Context, st *stream, p *streamPos, state map[string]*streamPos, emit connector.Emitter) error {
	s.polls.Inc()
	inc, ts := s.cfg.IncrementingColumn, s.cfg.TimestampColumn
	if s.cfg.Mode == ModeIncrementing && s.cfg.CheckMonotonic && p.Inc != "" {
		var n int64
		q := fmt.Sprintf("SELECT COUNT(*) FROM %s WHERE %s <= %s", st.from, s.d.Quote(inc), s.d.Placeholder(1))
		if err := s.db.QueryRowContext(ctx, q, p.Inc).Scan(&n); err != nil {
			return fmt.Errorf("rdbc: %s: monotonic check: %w", st.name, sqlrow.Classify(err))
		}
		if n > p.Below {
			return connector.Fatal(fmt.Errorf("rdbc: %s: column %s is not strictly increasing: %d row(s) appeared at or below the committed position %s=%s and were not read (use a column that only grows, such as an auto-increment key, or mode timestamp+incrementing)",
				st.name, inc, n-p.Below, inc, p.Inc))
		}
		p.Below = n
	}
	for {
		var where []string
		var args []any
		arg := func(v string) string {
			args = append(args, s.tsArg(v))
			return s.d.Placeholder(len(args))
		}
		order := ""
		limit := true
		switch s.cfg.Mode {
		case ModeIncrementing:
			if p.Inc != "" {
				args = append(args, p.Inc)
				where = append(where, fmt.Sprintf("%s > %s", s.d.Quote(inc), s.d.Placeholder(len(args))))
			}
			order = s.d.Quote(inc)
		case ModeTimestamp:
			if p.TS != "" {
				where = append(where, fmt.Sprintf("%s > %s", s.d.Quote(ts), arg(p.TS)))
			}
			order = s.d.Quote(ts)
			limit = false // rows sharing a timestamp must not be split by a LIMIT
		case ModeTimestampIncrementing:
			if p.TS != "" {
				qt, qi := s.d.Quote(ts), s.d.Quote(inc)
				a := arg(p.TS)
				b := arg(p.TS)
				args = append(args, p.Inc)
				where = append(where, fmt.Sprintf("(%s > %s OR (%s = %s AND %s > %s))", qt, a, qt, b, qi, s.d.Placeholder(len(args))))
			}
			order = s.d.Quote(ts) + ", " + s.d.Quote(inc)
		default:
			limit = false
		}
		if ts != "" {
			where = append(where, s.d.Quote(ts)+" IS NOT NULL")
			if s.cfg.TimestampDelayMs > 0 {
				if s.d == postgres {
					where = append(where, fmt.Sprintf("%s < now() - interval '%d milliseconds'", s.d.Quote(ts), s.cfg.TimestampDelayMs))
				} else {
					where = append(where, fmt.Sprintf("%s < NOW(6) - INTERVAL %d MICROSECOND", s.d.Quote(ts), s.cfg.TimestampDelayMs*1000))
				}
			}
		}
		q := "SELECT * FROM " + st.from
		if len(where) > 0 {
			q += " WHERE " + strings.Join(where, " AND ")
		}
		if order != "" {
			q += " ORDER BY " + order
		}
		if limit {
			q += " LIMIT " + strconv.Itoa(s.cfg.BatchSize)
		}
		n, err := s.query(ctx, st, q, args, p, state, emit)
		if err != nil {
			return err
		}
		if !limit || n < s.cfg.BatchSize {
			return nil
		}
	}
}

// tsArg is a stored position value as a parameter: MySQL does not read
// the ISO forms with a zone.
func (s *Source) tsArg(v string) any {
	if s.d == mysql {
		if t, err := sqlrow.ParseTime(v); err == nil {
			return t.UTC().Format(sqlrow.LayoutMySQL)
		}
	}
	return v
}

// query runs q and emits its rows in batches; it returns how many rows
// it read.
func (s *Source) query(ctx context.Context, st *stream, q string, args []any, p *streamPos, state map[string]*streamPos, emit connector.Emitter) (int, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("rdbc: %s: %w", st.name, sqlrow.Classify(err))
	}
	defer rows.Close()
	cts, err := rows.ColumnTypes()
	if err != nil {
		return 0, err
	}
	names := make([]string, len(cts))
	types := make([]string, len(cts))
	decl := make([]events.Column, len(cts))
	for i, ct := range cts {
		names[i], types[i] = ct.Name(), ct.DatabaseTypeName()
		decl[i] = events.Column{Name: ct.Name(), Type: declType(ct)}
		if st.info != nil {
			if c := st.info.col(ct.Name()); c != nil {
				decl[i] = events.Column{Name: c.Name, Type: c.Full, NotNull: !c.Nullable}
				if s.d == postgres {
					// format_type names arrays int[]; the catalog's
					// _int4 is what render knows.
					types[i] = c.Type
				}
			}
		}
	}
	colsJSON := string(events.AppendColumns(nil, decl))
	var pk []string
	if st.info != nil {
		pk = st.info.PK
	}
	dest := make([]any, len(cts))
	ptrs := make([]any, len(cts))
	for i := range dest {
		ptrs[i] = &dest[i]
	}
	var batch []*events.Event
	total := 0
	lastTS := ""
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := emit.Emit(ctx, batch); err != nil {
			return err
		}
		s.read.Add(uint64(len(batch)))
		batch = batch[:0:0]
		return nil
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return total, fmt.Errorf("rdbc: %s: %w", st.name, err)
		}
		row := make(map[string]any, len(cts))
		for i, v := range dest {
			r, err := sqlrow.Render(s.d, types[i], v)
			if err != nil {
				return total, fmt.Errorf("rdbc: %s.%s: %w", st.name, names[i], err)
			}
			row[names[i]] = r
		}
		tsv := ""
		if c := s.cfg.TimestampColumn; c != "" {
			tsv = fmt.Sprint(row[c])
		}
		// Timestamp mode: a batch ends only between two timestamps, since
		// the position cannot say how far into equal timestamps it got.
		if len(batch) >= s.cfg.BatchSize && (s.cfg.Mode != ModeTimestamp || tsv != lastTS) {
			if err := flush(); err != nil {
				return total, err
			}
		}
		lastTS = tsv
		switch s.cfg.Mode {
		case ModeIncrementing:
			p.Inc = fmt.Sprint(row[s.cfg.IncrementingColumn])
			p.Below++
		case ModeTimestamp:
			p.TS = tsv
		case ModeTimestampIncrementing:
			p.TS, p.Inc = tsv, fmt.Sprint(row[s.cfg.IncrementingColumn])
		}
		pos, _ := json.Marshal(state)
		e := events.New(events.Record, st.name, events.ValuePayload(row))
		e.Metadata.Position = string(pos)
		src := &events.SourceInfo{Connector: "rdbc", Name: connector.RuntimeFrom(ctx).Name, Columns: colsJSON, Position: string(pos)}
		if st.table != "" {
			schema, table := splitName(st.table)
			src.Table, src.Schema = table, schema
		}
		e.Source = src
		if len(pk) > 0 {
			key := make(map[string]any, len(pk))
			for _, k := range pk {
				key[k] = row[k]
			}
			e.Key, _ = json.Marshal(key)
		}
		batch = append(batch, e)
		total++
	}
	if err := rows.Err(); err != nil {
		return total, fmt.Errorf("rdbc: %s: %w", st.name, sqlrow.Classify(err))
	}
	return total, flush()
}

// declType is a query column's declared type, as near to the catalog's
// as database/sql tells it.
func declType(ct *sql.ColumnType) string {
	t := strings.ToLower(ct.DatabaseTypeName())
	if p, sc, ok := ct.DecimalSize(); ok && (t == "numeric" || t == "decimal") {
		return fmt.Sprintf("%s(%d,%d)", t, p, sc)
	}
	if n, ok := ct.Length(); ok && n > 0 && n < 1<<16 && (t == "varchar" || t == "char") {
		return fmt.Sprintf("%s(%d)", t, n)
	}
	return t
}
