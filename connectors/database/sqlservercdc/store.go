package sqlservercdc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
)

// store is the narrow set of queries the source runs. sqlStore runs them
// on SQL Server through go-mssqldb; the tests run them on a fake whose
// result sets are built after Microsoft's documentation of the CDC
// functions and catalog views.
type store interface {
	// DatabaseCDC reports sys.databases.is_cdc_enabled of the database.
	DatabaseCDC(ctx context.Context) (bool, error)
	// Tables lists the user tables of schema with is_tracked_by_cdc and
	// the row estimate.
	Tables(ctx context.Context, schema string) ([]tableRow, error)
	// CaptureInstances lists cdc.change_tables of the schema's tables:
	// instance name, table, sys.fn_cdc_get_min_lsn of the instance, its
	// cdc.index_columns, its captured columns and whether the user may
	// read the change table.
	CaptureInstances(ctx context.Context, schema string) ([]captureInstance, error)
	// Columns lists a table's columns with their types, in column order.
	Columns(ctx context.Context, schema, table string) ([]column, error)
	// MaxLSN is sys.fn_cdc_get_max_lsn() (zero when it is NULL: nothing
	// captured yet).
	MaxLSN(ctx context.Context) (lsn, error)
	// Capture is how far the capture job has read the log: the max LSN,
	// sys.fn_cdc_map_lsn_to_time of it and the server's clock.
	Capture(ctx context.Context) (captureState, error)
	// Changes is SELECT * FROM cdc.fn_cdc_get_all_changes_<instance>
	// (from, to, N'all update old'), ordered by __$start_lsn, __$seqval,
	// __$operation, with the commit time of each row's transaction
	// (sys.fn_cdc_map_lsn_to_time(__$start_lsn) with the server's UTC
	// offset) as the column __$commit_time.
	Changes(ctx context.Context, instance string, from, to lsn) (*resultSet, error)
	// Chunk reads up to limit rows of a table after a key, in key order
	// (all rows when key is empty).
	Chunk(ctx context.Context, q chunkQuery) (*resultSet, error)
	Close() error
}

// captureState is where the capture job stands. MaxTime and Now are the
// server's local clock (tran_end_time is recorded in it, SYSDATETIME
// reads it), so they compare with each other and with nothing else.
type captureState struct {
	Max     lsn       // sys.fn_cdc_get_max_lsn()
	MaxTime time.Time // sys.fn_cdc_map_lsn_to_time(Max); zero when NULL
	Now     time.Time // SYSDATETIME()
}

type tableRow struct {
	Name        string
	TrackedCDC  bool
	RowEstimate int64
}

// captureInstance is one row of cdc.change_tables.
type captureInstance struct {
	Name     string // capture_instance
	Table    string // source table (in the configured schema)
	MinLSN   lsn    // sys.fn_cdc_get_min_lsn(capture_instance)
	Index    []string
	Columns  []string // captured columns, in column_ordinal order
	Readable bool     // SELECT permission on cdc.<instance>_CT
}

// column is a column of a source table as sys.columns and sys.types
// describe it.
type column struct {
	Name      string
	Type      string // sys.types name: decimal, datetime2, uniqueidentifier, timestamp (rowversion), ...
	Precision int
	Scale     int
	MaxLength int // bytes; -1 for (max)
	Nullable  bool
}

// declared is the column's type as SQL would declare it.
func (c column) declared() string {
	switch c.Type {
	case "decimal", "numeric":
		return fmt.Sprintf("%s(%d,%d)", c.Type, c.Precision, c.Scale)
	case "datetime2", "datetimeoffset", "time":
		return fmt.Sprintf("%s(%d)", c.Type, c.Scale)
	case "varchar", "char", "varbinary", "binary":
		if c.MaxLength < 0 {
			return c.Type + "(max)"
		}
		return fmt.Sprintf("%s(%d)", c.Type, c.MaxLength)
	case "nvarchar", "nchar":
		if c.MaxLength < 0 {
			return c.Type + "(max)"
		}
		return fmt.Sprintf("%s(%d)", c.Type, c.MaxLength/2)
	case "timestamp":
		return "rowversion"
	}
	return c.Type
}

// resultSet is a result as go-mssqldb scans it into any: column names
// and rows of driver values ([]byte for binary, decimal and money,
// time.Time for dates and times, int64, float64, bool, string).
type resultSet struct {
	Cols []string
	Rows [][]any
}

func (r *resultSet) index(name string) int {
	for i, c := range r.Cols {
		if c == name {
			return i
		}
	}
	return -1
}

// chunkQuery is one keyset page of a snapshot.
type chunkQuery struct {
	Schema, Table string
	Cols          []string
	Key           []string // key columns; empty: the whole table at once
	After         []any    // values of Key of the last row read; nil: from the start
	Limit         int
}

// sqlStore runs the queries on SQL Server.
type sqlStore struct {
	db *sql.DB
}

func openSQL(ctx context.Context, cfg *Config) (*sqlStore, error) {
	conn, err := mssql.NewConnector(cfg.dsn())
	if err != nil {
		return nil, fmt.Errorf("sqlserver-cdc: connection settings: %w", redact(err, cfg.Password))
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(2)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlserver-cdc: connecting to %s:%d as %s: %w", cfg.Host, cfg.Port, cfg.Username, redact(err, cfg.Password))
	}
	return &sqlStore{db: db}, nil
}

// redact removes the password from a driver error.
func redact(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "[redacted]"))
}

func (s *sqlStore) Close() error { return s.db.Close() }

func (s *sqlStore) query(ctx context.Context, q string, args ...any) (*resultSet, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	rs := &resultSet{Cols: cols}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		rs.Rows = append(rs.Rows, vals)
	}
	return rs, rows.Err()
}

func (s *sqlStore) DatabaseCDC(ctx context.Context) (bool, error) {
	var on bool
	err := s.db.QueryRowContext(ctx, "SELECT is_cdc_enabled FROM sys.databases WHERE name = DB_NAME()").Scan(&on)
	return on, err
}

func (s *sqlStore) Tables(ctx context.Context, schema string) ([]tableRow, error) {
	rs, err := s.query(ctx, `SELECT t.name, t.is_tracked_by_cdc,
  (SELECT SUM(p.rows) FROM sys.partitions p WHERE p.object_id = t.object_id AND p.index_id IN (0, 1))
FROM sys.tables t JOIN sys.schemas s ON s.schema_id = t.schema_id
WHERE s.name = @p1 AND t.is_ms_shipped = 0 ORDER BY t.name`, schema)
	if err != nil {
		return nil, err
	}
	out := make([]tableRow, 0, len(rs.Rows))
	for _, r := range rs.Rows {
		est, _ := r[2].(int64)
		out = append(out, tableRow{Name: asString(r[0]), TrackedCDC: r[1] == true, RowEstimate: est})
	}
	return out, nil
}

func (s *sqlStore) CaptureInstances(ctx context.Context, schema string) ([]captureInstance, error) {
	rs, err := s.query(ctx, `SELECT ct.capture_instance, t.name, sys.fn_cdc_get_min_lsn(ct.capture_instance),
  ISNULL(HAS_PERMS_BY_NAME(QUOTENAME('cdc') + '.' + QUOTENAME(ct.capture_instance + '_CT'), 'OBJECT', 'SELECT'), 0)
FROM cdc.change_tables ct
JOIN sys.tables t ON t.object_id = ct.source_object_id
JOIN sys.schemas s ON s.schema_id = t.schema_id
WHERE s.name = @p1 ORDER BY t.name, ct.create_date, ct.capture_instance`, schema)
	if err != nil {
		return nil, err
	}
	var out []captureInstance
	for _, r := range rs.Rows {
		ci := captureInstance{Name: asString(r[0]), Table: asString(r[1]), Readable: asInt(r[3]) == 1}
		if b, ok := r[2].([]byte); ok {
			if ci.MinLSN, err = lsnOf(b); err != nil {
				return nil, fmt.Errorf("fn_cdc_get_min_lsn(%s): %w", ci.Name, err)
			}
		}
		cols, err := s.query(ctx, `SELECT cc.column_name FROM cdc.captured_columns cc
JOIN cdc.change_tables ct ON ct.object_id = cc.object_id WHERE ct.capture_instance = @p1 ORDER BY cc.column_ordinal`, ci.Name)
		if err != nil {
			return nil, err
		}
		for _, c := range cols.Rows {
			ci.Columns = append(ci.Columns, asString(c[0]))
		}
		idx, err := s.query(ctx, `SELECT ic.column_name FROM cdc.index_columns ic
JOIN cdc.change_tables ct ON ct.object_id = ic.object_id WHERE ct.capture_instance = @p1 ORDER BY ic.index_ordinal`, ci.Name)
		if err != nil {
			return nil, err
		}
		for _, c := range idx.Rows {
			ci.Index = append(ci.Index, asString(c[0]))
		}
		out = append(out, ci)
	}
	return out, nil
}

func (s *sqlStore) Columns(ctx context.Context, schema, table string) ([]column, error) {
	rs, err := s.query(ctx, `SELECT c.name, ty.name, c.precision, c.scale, c.max_length, c.is_nullable
FROM sys.columns c
JOIN sys.types ty ON ty.user_type_id = c.system_type_id AND ty.user_type_id = ty.system_type_id
WHERE c.object_id = OBJECT_ID(QUOTENAME(@p1) + '.' + QUOTENAME(@p2)) ORDER BY c.column_id`, schema, table)
	if err != nil {
		return nil, err
	}
	out := make([]column, 0, len(rs.Rows))
	for _, r := range rs.Rows {
		out = append(out, column{Name: asString(r[0]), Type: asString(r[1]), Precision: asInt(r[2]), Scale: asInt(r[3]), MaxLength: asInt(r[4]), Nullable: r[5] == true})
	}
	return out, nil
}

func (s *sqlStore) MaxLSN(ctx context.Context) (lsn, error) {
	var b []byte
	if err := s.db.QueryRowContext(ctx, "SELECT sys.fn_cdc_get_max_lsn()").Scan(&b); err != nil {
		return lsn{}, err
	}
	if b == nil {
		return lsn{}, nil
	}
	return lsnOf(b)
}

// Capture reads the max LSN, its commit time and the clock in one
// statement, so that the three belong together.
func (s *sqlStore) Capture(ctx context.Context) (captureState, error) {
	var b []byte
	var maxTime sql.NullTime
	var c captureState
	err := s.db.QueryRowContext(ctx, "SELECT sys.fn_cdc_get_max_lsn(), sys.fn_cdc_map_lsn_to_time(sys.fn_cdc_get_max_lsn()), SYSDATETIME()").Scan(&b, &maxTime, &c.Now)
	if err != nil {
		return c, err
	}
	if b != nil {
		if c.Max, err = lsnOf(b); err != nil {
			return c, err
		}
	}
	if maxTime.Valid {
		c.MaxTime = maxTime.Time
	}
	return c, nil
}

// changesSQL is the query of a capture instance's changes. The function's
// name is the capture instance's; it cannot be a parameter, so it is
// quoted as an identifier. tran_end_time is the server's local time: it
// is given the server's current UTC offset (datetimeoffset), which is
// exact unless the offset changed (daylight saving) between the commit
// and the read.
func changesSQL(instance string) string {
	return "SELECT c.*, TODATETIMEOFFSET(sys.fn_cdc_map_lsn_to_time(c.__$start_lsn), DATEPART(TZOFFSET, SYSDATETIMEOFFSET())) AS [" + colCommitTime + "] FROM cdc." +
		quoteIdent("fn_cdc_get_all_changes_"+instance) + "(@p1, @p2, N'all update old') AS c ORDER BY c.__$start_lsn, c.__$seqval, c.__$operation"
}

func (s *sqlStore) Changes(ctx context.Context, instance string, from, to lsn) (*resultSet, error) {
	return s.query(ctx, changesSQL(instance), from[:], to[:])
}

func (s *sqlStore) Chunk(ctx context.Context, q chunkQuery) (*resultSet, error) {
	return s.query(ctx, chunkSQL(q), q.After...)
}

// chunkSQL is the keyset query of a chunk: rows after the key
// ((a > @p1) OR (a = @p1 AND b > @p2) ...) in key order.
func chunkSQL(q chunkQuery) string {
	cols := make([]string, len(q.Cols))
	for i, c := range q.Cols {
		cols[i] = quoteIdent(c)
	}
	var b strings.Builder
	b.WriteString("SELECT ")
	if len(q.Key) > 0 {
		fmt.Fprintf(&b, "TOP (%d) ", q.Limit)
	}
	b.WriteString(strings.Join(cols, ", "))
	b.WriteString(" FROM " + quoteIdent(q.Schema) + "." + quoteIdent(q.Table))
	if len(q.Key) > 0 && q.After != nil {
		var ors []string
		for i := range q.Key {
			var ands []string
			for j := range i {
				ands = append(ands, fmt.Sprintf("%s = @p%d", quoteIdent(q.Key[j]), j+1))
			}
			ands = append(ands, fmt.Sprintf("%s > @p%d", quoteIdent(q.Key[i]), i+1))
			ors = append(ors, "("+strings.Join(ands, " AND ")+")")
		}
		b.WriteString(" WHERE " + strings.Join(ors, " OR "))
	}
	if len(q.Key) > 0 {
		keys := make([]string, len(q.Key))
		for i, k := range q.Key {
			keys[i] = quoteIdent(k)
		}
		b.WriteString(" ORDER BY " + strings.Join(keys, ", "))
	}
	return b.String()
}

// quoteIdent quotes a SQL Server identifier as QUOTENAME does.
func quoteIdent(s string) string { return "[" + strings.ReplaceAll(s, "]", "]]") + "]" }

func asString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

func asInt(v any) int {
	switch x := v.(type) {
	case int64:
		return int(x)
	case int32:
		return int(x)
	case int:
		return x
	case bool:
		if x {
			return 1
		}
	}
	return 0
}
