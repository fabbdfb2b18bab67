package snowflake

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/resilience"
)

// column is one column of the target table as DESCRIBE TABLE reports it.
type column struct {
	name        string
	typ         string // NUMBER(12,2), VARCHAR(16777216), TIMESTAMP_NTZ(9), ...
	base        string // NUMBER, VARCHAR, ...
	prec, scale int    // NUMBER(p,s); for VARCHAR and BINARY prec is the length
	notNull     bool
	hasDefault  bool
}

type tableSchema struct {
	cols  map[string]*column
	order []*column
}

// errNoTable is a table DESCRIBE TABLE does not find.
var errNoTable = errors.New("table does not exist or not authorized")

var typeRE = regexp.MustCompile(`^([A-Z_]+)(?:\((\d+)(?:,\s*(\d+))?\))?`)

// qualified is the table's name for SQL.
func (s *Sink) qualified() string {
	return quoteName(s.cfg.Database) + "." + quoteName(s.cfg.Schema) + "." + quoteName(s.cfg.Table)
}

// quoteName leaves a plain identifier unquoted (Snowflake resolves it
// uppercased, as the REST API does) and quotes anything else.
func quoteName(n string) string {
	if identRE.MatchString(n) {
		return n
	}
	return `"` + strings.ReplaceAll(n, `"`, `""`) + `"`
}

// loadTable reads the table's columns (DESCRIBE TABLE through the driver).
func (s *Sink) loadTable(ctx context.Context) (*tableSchema, error) {
	res, err := s.sql.query(ctx, "DESCRIBE TABLE "+s.qualified())
	if err != nil {
		if sqlNumber(err) == sfObjectNotFound {
			return nil, fmt.Errorf("table %s.%s.%s: %w", s.cfg.Database, s.cfg.Schema, s.cfg.Table, errNoTable)
		}
		return nil, fmt.Errorf("describe table %s.%s.%s: %w", s.cfg.Database, s.cfg.Schema, s.cfg.Table, err)
	}
	iName, iType, iKind, iNull, iDef := res.col("name"), res.col("type"), res.col("kind"), res.col("null?"), res.col("default")
	if iName < 0 || iType < 0 {
		return nil, resilience.Errorf(resilience.Fatal, "describe table: unexpected result columns")
	}
	str := func(row []*string, i int) string {
		if i < 0 || i >= len(row) || row[i] == nil {
			return ""
		}
		return *row[i]
	}
	t := &tableSchema{cols: map[string]*column{}}
	for _, row := range res.rows {
		if k := str(row, iKind); k != "" && k != "COLUMN" {
			continue
		}
		c := &column{name: str(row, iName), typ: str(row, iType), notNull: str(row, iNull) == "N", hasDefault: str(row, iDef) != ""}
		if m := typeRE.FindStringSubmatch(strings.ToUpper(c.typ)); m != nil {
			c.base = m[1]
			c.prec, _ = strconv.Atoi(m[2])
			c.scale, _ = strconv.Atoi(m[3])
		}
		t.cols[c.name] = c
		t.order = append(t.order, c)
	}
	s.mu.Lock()
	s.table = t
	s.mu.Unlock()
	return t, nil
}

// tableFor returns the table's columns, creating the table from the
// batch's rows first when it is missing and create_table is set.
func (s *Sink) tableFor(ctx context.Context, batch []*events.Event) (*tableSchema, error) {
	s.mu.Lock()
	t := s.table
	s.mu.Unlock()
	if t != nil {
		return t, nil
	}
	t, err := s.loadTable(ctx)
	if !errors.Is(err, errNoTable) {
		return t, err
	}
	if !s.cfg.CreateTable {
		return nil, connector.Fatal(fmt.Errorf("%w (create it, or set create_table: true)", err))
	}
	ddl, err := s.createStatement(batch)
	if err != nil {
		return nil, err
	}
	if _, err := s.sql.query(ctx, ddl); err != nil {
		return nil, fmt.Errorf("create table: %w", err)
	}
	connector.RuntimeFrom(ctx).Logger().Info("snowflake: created the table", "table", s.qualified())
	return s.loadTable(ctx)
}

// columnName is a row key as the column it fills.
func (s *Sink) columnName(k string) string {
	if s.cfg.ColumnCase == "upper" {
		return strings.ToUpper(k)
	}
	return k
}

// createStatement builds CREATE TABLE IF NOT EXISTS from the source's
// column types (CDC events carry them) or else from the first row's JSON
// values.
func (s *Sink) createStatement(batch []*events.Event) (string, error) {
	type col struct{ name, typ string }
	var cols []col
	seen := map[string]bool{}
	add := func(name, typ string) {
		n := s.columnName(name)
		if !seen[n] {
			seen[n] = true
			cols = append(cols, col{n, typ})
		}
	}
	for _, e := range batch {
		if !e.Type.IsData() {
			continue
		}
		if e.Source != nil && e.Source.Columns != "" {
			if sc, err := events.ParseColumns(e.Source.Columns); err == nil {
				for _, c := range sc {
					add(c.Name, snowflakeType(c.Type))
				}
			}
		}
		row, err := e.Row()
		if err != nil || row == nil {
			continue
		}
		keys := make([]string, 0, len(row))
		for k := range row {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			add(k, jsonType(row[k]))
		}
		break
	}
	if s.cfg.OpColumn != "" {
		add(s.cfg.OpColumn, "VARCHAR(1)")
	}
	if len(cols) == 0 {
		return "", resilience.Errorf(resilience.Fatal, "create table: the batch has no row to take columns from")
	}
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = quoteColumn(c.name) + " " + c.typ
	}
	return "CREATE TABLE IF NOT EXISTS " + s.qualified() + " (" + strings.Join(parts, ", ") + ")", nil
}

// quoteColumn quotes a column name unless it is a plain uppercase
// identifier (which an unquoted name resolves to).
func quoteColumn(n string) string {
	if identRE.MatchString(n) && n == strings.ToUpper(n) {
		return n
	}
	return `"` + strings.ReplaceAll(n, `"`, `""`) + `"`
}

var srcTypeRE = regexp.MustCompile(`^([a-z ]+?)\s*(?:\((\d+)(?:,\s*(\d+))?\))?(\[\])?(?: not null)?$`)

// snowflakeType maps a PostgreSQL or MySQL column type to Snowflake's.
func snowflakeType(src string) string {
	m := srcTypeRE.FindStringSubmatch(strings.ToLower(strings.TrimSpace(strings.TrimSuffix(src, " unsigned"))))
	if m == nil {
		return "VARCHAR"
	}
	if m[4] != "" {
		return "ARRAY"
	}
	switch t := m[1]; {
	case t == "tinyint" && m[2] == "1", t == "boolean", t == "bool", t == "bit" && (m[2] == "" || m[2] == "1"):
		return "BOOLEAN"
	case t == "smallint", t == "integer", t == "int", t == "bigint", t == "tinyint", t == "mediumint", t == "serial", t == "bigserial", t == "smallserial", t == "year":
		return "NUMBER(38,0)"
	case t == "numeric", t == "decimal":
		if m[2] != "" {
			sc := m[3]
			if sc == "" {
				sc = "0"
			}
			return "NUMBER(" + m[2] + "," + sc + ")"
		}
		return "NUMBER(38,9)"
	case t == "real", t == "double precision", t == "double", t == "float":
		return "FLOAT"
	case t == "date":
		return "DATE"
	case strings.HasPrefix(t, "time") && strings.Contains(t, "with time zone"), t == "timestamptz":
		if strings.HasPrefix(t, "timestamp") || t == "timestamptz" {
			return "TIMESTAMP_TZ"
		}
		return "TIME"
	case strings.HasPrefix(t, "timestamp"), t == "datetime":
		return "TIMESTAMP_NTZ"
	case strings.HasPrefix(t, "time"):
		return "TIME"
	case t == "json", t == "jsonb":
		return "VARIANT"
	case t == "bytea", strings.HasSuffix(t, "blob"), t == "binary", t == "varbinary":
		return "BINARY"
	case t == "uuid":
		return "VARCHAR(36)"
	case (t == "character varying" || t == "varchar" || t == "character" || t == "char") && m[2] != "":
		return "VARCHAR(" + m[2] + ")"
	}
	return "VARCHAR"
}

// jsonType is the column type for a JSON value when the source gave none.
func jsonType(v any) string {
	switch x := v.(type) {
	case bool:
		return "BOOLEAN"
	case json.Number:
		if _, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return "NUMBER(38,0)"
		}
		return "FLOAT"
	case map[string]any:
		return "VARIANT"
	case []any:
		return "ARRAY"
	}
	return "VARCHAR"
}

// encodeRow renders an event's row as one NDJSON line; nil when the event
// makes no row. An error names the column and why the value does not fit.
func (s *Sink) encodeRow(e *events.Event, t *tableSchema) ([]byte, error) {
	if !e.Type.IsData() {
		return nil, nil
	}
	if e.Type == events.Delete {
		write := s.cfg.Deletes == "write" || s.cfg.Deletes == "auto" && s.cfg.OpColumn != ""
		if !write {
			s.skipped.Inc()
			return nil, nil
		}
	}
	row, err := e.Row()
	if err != nil {
		return nil, err
	}
	if row == nil {
		return nil, fmt.Errorf("%s event without a row", e.Type)
	}
	out := make(map[string]any, len(row)+1)
	for k, v := range row {
		n := s.columnName(k)
		if _, dup := out[n]; dup {
			return nil, fmt.Errorf("column %s: two fields of the row map to it (column_case: %s)", n, s.cfg.ColumnCase)
		}
		out[n] = v
	}
	if s.cfg.OpColumn != "" {
		out[s.columnName(s.cfg.OpColumn)] = e.Type.Op()
	}
	if t != nil {
		if err := s.check(t, out); err != nil {
			return nil, err
		}
	}
	return json.Marshal(out)
}

// check validates a row against the table's columns as the service
// would: a value of the wrong kind, a number too large for its precision,
// a string longer than its column, a NULL in a NOT NULL column.
func (s *Sink) check(t *tableSchema, row map[string]any) error {
	for _, c := range t.order {
		v, ok := row[c.name]
		if (!ok && !c.hasDefault || ok && v == nil) && c.notNull {
			return fmt.Errorf("column %s (%s): NULL in a NOT NULL column", c.name, c.typ)
		}
		if !ok || v == nil {
			continue
		}
		if err := fits(c, v); err != nil {
			return fmt.Errorf("column %s (%s): %w", c.name, c.typ, err)
		}
	}
	return nil
}

// fits checks one non-null value against its column.
func fits(c *column, v any) error {
	switch c.base {
	case "NUMBER", "DECIMAL", "NUMERIC", "INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "BYTEINT":
		var s string
		switch x := v.(type) {
		case json.Number:
			s = string(x)
		case string:
			s = strings.TrimSpace(x)
		case bool:
			return nil // Snowflake casts booleans to 0/1
		default:
			return fmt.Errorf("a %s is not a number", kind(v))
		}
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			return fmt.Errorf("%.40q is not a number", s)
		}
		p := c.prec
		if p == 0 {
			p = 38
		}
		lim := new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(p-c.scale)), nil))
		if new(big.Rat).Abs(r).Cmp(lim) >= 0 {
			return fmt.Errorf("%s is out of range: the column holds %d digits before the decimal point", s, p-c.scale)
		}
	case "FLOAT", "FLOAT4", "FLOAT8", "DOUBLE", "REAL":
		switch x := v.(type) {
		case json.Number, bool:
		case string:
			if _, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err != nil && !isSpecialFloat(x) {
				return fmt.Errorf("%.40q is not a number", x)
			}
		default:
			return fmt.Errorf("a %s is not a number", kind(v))
		}
	case "VARCHAR", "STRING", "TEXT", "CHAR", "CHARACTER":
		switch x := v.(type) {
		case string:
			if c.prec > 0 && utf8.RuneCountInString(x) > c.prec {
				return fmt.Errorf("%d characters, the column holds %d", utf8.RuneCountInString(x), c.prec)
			}
		case json.Number, bool:
		default:
			return fmt.Errorf("a %s for a text column", kind(v))
		}
	case "BOOLEAN":
		switch x := v.(type) {
		case bool, json.Number:
		case string:
			switch strings.ToLower(strings.TrimSpace(x)) {
			case "true", "false", "t", "f", "yes", "no", "y", "n", "on", "off", "1", "0":
			default:
				return fmt.Errorf("%.40q is not a boolean", x)
			}
		default:
			return fmt.Errorf("a %s is not a boolean", kind(v))
		}
	case "DATE", "TIME", "TIMESTAMP_NTZ", "TIMESTAMP_LTZ", "TIMESTAMP_TZ", "TIMESTAMP", "DATETIME":
		switch x := v.(type) {
		case json.Number:
			if _, err := strconv.ParseInt(string(x), 10, 64); err != nil {
				return fmt.Errorf("%s is not an epoch integer", x)
			}
		case string:
			if !isTime(c.base, strings.TrimSpace(x)) {
				return fmt.Errorf("%.40q is not a %s", x, strings.ToLower(c.base))
			}
		default:
			return fmt.Errorf("a %s is not a %s", kind(v), strings.ToLower(c.base))
		}
	case "OBJECT":
		if _, ok := v.(map[string]any); !ok {
			return fmt.Errorf("a %s is not an object", kind(v))
		}
	case "ARRAY":
		if _, ok := v.([]any); !ok {
			return fmt.Errorf("a %s is not an array", kind(v))
		}
	case "BINARY", "VARBINARY":
		x, ok := v.(string)
		if !ok {
			return fmt.Errorf("a %s is not hex-encoded binary", kind(v))
		}
		b, err := hex.DecodeString(x)
		if err != nil {
			return fmt.Errorf("not hex-encoded binary: %v", err)
		}
		if c.prec > 0 && len(b) > c.prec {
			return fmt.Errorf("%d bytes, the column holds %d", len(b), c.prec)
		}
	}
	return nil
}

func isSpecialFloat(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "nan", "inf", "+inf", "-inf", "infinity", "-infinity":
		return true
	}
	return false
}

var timeLayouts = map[string][]string{
	"DATE": {"2006-01-02", time.RFC3339Nano},
	"TIME": {"15:04:05.999999999", "15:04:05", "15:04"},
	"TS": {time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00",
		"2006-01-02 15:04:05.999999999 -0700", "2006-01-02"},
}

func isTime(base, s string) bool {
	key := "TS"
	if base == "DATE" || base == "TIME" {
		key = base
	}
	for _, l := range timeLayouts[key] {
		if _, err := time.Parse(l, s); err == nil {
			return true
		}
	}
	if _, err := strconv.ParseInt(s, 10, 64); err == nil {
		return true // epoch seconds, milli-, micro- or nanoseconds as text
	}
	return false
}

func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case string:
		return "string"
	}
	return fmt.Sprintf("%T", v)
}
