package mysqlcdc

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/rivven/rivven-connect/events"
)

// tableSchema is a table's columns as information_schema describes them
// now. The binlog path uses it only for what TABLE_MAP's optional metadata
// does not carry (binlog_row_metadata=MINIMAL, or MariaDB's UUID/INET types).
type tableSchema struct {
	DB, Table string
	Cols      []colInfo
	DataTypes []string
	ColTypes  []string
	Nullable  []bool
	PK        []int
}

// columnTypes renders the columns as source.columns, which every change
// of the table carries so that an encoding can write values by column
// type (Debezium's Decimal, MicroTimestamp, Json) without the schema
// event (a function that started mid-stream, another partition).
func (ts *tableSchema) columnTypes() string {
	cols := make([]events.Column, len(ts.Cols))
	for i, c := range ts.Cols {
		cols[i] = events.Column{Name: c.Name, Type: ts.ColTypes[i], NotNull: !ts.Nullable[i]}
	}
	return string(events.AppendColumns(nil, cols))
}

// describes reports whether ts has the columns of ti, by name and in
// order: only then do its types describe ti's row images.
func (ts *tableSchema) describes(ti *tableInfo) bool {
	if ts == nil || len(ts.Cols) != len(ti.cols) {
		return false
	}
	for i := range ts.Cols {
		if !strings.EqualFold(ts.Cols[i].Name, ti.cols[i].Name) {
			return false
		}
	}
	return true
}

func (ts *tableSchema) colIndex(name string) int {
	for i, c := range ts.Cols {
		if strings.EqualFold(c.Name, name) {
			return i
		}
	}
	return -1
}

// loadTableSchema reads a table's columns and primary key; nil when the
// table does not exist.
func loadTableSchema(c *conn, db, table string) (*tableSchema, error) {
	res, err := c.query(fmt.Sprintf(`SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_SET_NAME, DATETIME_PRECISION, IS_NULLABLE
FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION`, quoteString(db), quoteString(table)))
	if err != nil {
		return nil, err
	}
	if len(res.Rows) == 0 {
		return nil, nil
	}
	ts := &tableSchema{DB: db, Table: table}
	for _, r := range res.Rows {
		dt := strings.ToLower(string(r[1]))
		ct := strings.ToLower(string(r[2]))
		ci := colInfo{Name: string(r[0]), Charset: string(r[3])}
		if r[4] != nil {
			ci.FSP, _ = strconv.Atoi(string(r[4]))
		}
		ci.Kind = kindOf(dt, ct, ci.Charset)
		switch ci.Kind {
		case kEnum:
			ci.Enum = parseEnumValues(string(r[2]))
		case kSet:
			ci.Set = parseEnumValues(string(r[2]))
		}
		ts.Cols = append(ts.Cols, ci)
		ts.DataTypes = append(ts.DataTypes, dt)
		ts.ColTypes = append(ts.ColTypes, ct)
		ts.Nullable = append(ts.Nullable, string(r[5]) == "YES")
	}
	res, err = c.query(fmt.Sprintf(`SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION`, quoteString(db), quoteString(table)))
	if err != nil {
		return nil, err
	}
	for _, r := range res.Rows {
		if i := ts.colIndex(string(r[0])); i >= 0 {
			ts.PK = append(ts.PK, i)
		}
	}
	return ts, nil
}

// kindOf maps an information_schema DATA_TYPE to how values are rendered.
func kindOf(dataType, columnType, charset string) kind {
	unsigned := strings.Contains(columnType, "unsigned")
	switch dataType {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint":
		if unsigned {
			return kUint
		}
		return kInt
	case "float":
		return kFloat
	case "double", "real", "double precision":
		return kDouble
	case "decimal", "numeric", "dec", "fixed":
		return kDecimal
	case "date":
		return kDate
	case "datetime":
		return kDatetime
	case "timestamp":
		return kTimestamp
	case "time":
		return kTime
	case "year":
		return kYear
	case "enum":
		return kEnum
	case "set":
		return kSet
	case "bit":
		return kBit
	case "json":
		if charset == "" || charset == "binary" {
			return kJSON // MySQL's native type; MariaDB's JSON is longtext with a charset
		}
		return kText
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext":
		if charset == "binary" {
			return kBytes
		}
		return kText
	case "uuid":
		return kUUID
	case "inet4":
		return kInet4
	case "inet6":
		return kInet6
	}
	// binary, varbinary, blobs, geometry types
	return kBytes
}

// parseEnumValues parses enum('a','b”c') or set(...) from COLUMN_TYPE.
func parseEnumValues(ct string) []string {
	open := strings.IndexByte(ct, '(')
	if open < 0 {
		return nil
	}
	s := ct[open+1:]
	var out []string
	for {
		s = strings.TrimLeft(s, " ,")
		if !strings.HasPrefix(s, "'") {
			return out
		}
		s = s[1:]
		var sb strings.Builder
		for {
			i := strings.IndexByte(s, '\'')
			if i < 0 {
				return out
			}
			sb.WriteString(s[:i])
			s = s[i+1:]
			if strings.HasPrefix(s, "'") {
				sb.WriteByte('\'')
				s = s[1:]
				continue
			}
			break
		}
		out = append(out, sb.String())
	}
}

// loadCollations maps collation ids (as TABLE_MAP metadata carries them)
// to character set names.
func loadCollations(c *conn) (map[uint16]string, error) {
	res, err := c.query("SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS")
	if err != nil {
		return nil, err
	}
	m := make(map[uint16]string, len(res.Rows))
	for _, r := range res.Rows {
		id, err := strconv.Atoi(string(r[0]))
		if err == nil {
			m[uint16(id)] = string(r[1])
		}
	}
	return m, nil
}

// listTables lists the base tables of db.
func listTables(c *conn, db string) ([]string, error) {
	res, err := c.query(fmt.Sprintf(`SELECT TABLE_NAME FROM information_schema.TABLES
WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME`, quoteString(db)))
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(res.Rows))
	for _, r := range res.Rows {
		out = append(out, string(r[0]))
	}
	return out, nil
}

// tableInfo is a TABLE_MAP joined with what is known about its columns.
type tableInfo struct {
	tm       *tableMap
	db       string
	table    string
	captured bool
	signal   bool // the signal table (signal_table): read for requests, never emitted
	cols     []colInfo
	unsigned []bool
	pk       []int
	// schemaMismatch is set when the column count of the cached schema
	// differs from the TABLE_MAP and no names came with the event: names
	// are then col_N.
	schemaMismatch bool
	// columns is the source.columns of its events (empty when
	// information_schema does not describe the columns the table map
	// has).
	columns string

	// Precomputed once per table map instead of per row: each column's
	// quoted JSON name followed by ':' (so row decoding copies bytes
	// instead of escaping names), the stream name and the namespace the
	// events of this table share (events only read it).
	colKeys [][]byte
	stream  string
	ns      *string
}

// buildTableInfo merges TABLE_MAP metadata with the schema cache (ts may
// be nil) and the collation map.
func buildTableInfo(tm *tableMap, ts *tableSchema, collations map[uint16]string) *tableInfo {
	n := len(tm.Types)
	ti := &tableInfo{tm: tm, db: tm.Schema, table: tm.Table, cols: make([]colInfo, n), unsigned: make([]bool, n)}
	useSchema := ts != nil && len(ts.Cols) == n
	if ts != nil && !useSchema && tm.Names == nil {
		ti.schemaMismatch = true
	}
	for i := range n {
		ci := &ti.cols[i]
		switch {
		case tm.Names != nil:
			ci.Name = tm.Names[i]
		case useSchema:
			ci.Name = ts.Cols[i].Name
		default:
			ci.Name = "col_" + strconv.Itoa(i+1)
		}
		// Use the schema cache only when it describes the same column.
		var sc *colInfo
		if useSchema && strings.EqualFold(ts.Cols[i].Name, ci.Name) {
			sc = &ts.Cols[i]
		}
		switch {
		case tm.Unsigned != nil:
			ti.unsigned[i] = tm.Unsigned[i]
		case sc != nil:
			ti.unsigned[i] = sc.Kind == kUint
		}
		if tm.Collation != nil && tm.Collation[i] != 0 {
			ci.Charset = collations[tm.Collation[i]]
			if ci.Charset == "" && tm.Collation[i] == 63 {
				ci.Charset = "binary"
			}
		}
		if ci.Charset == "" && sc != nil {
			ci.Charset = sc.Charset
			if sc.Kind == kBytes {
				ci.Charset = "binary"
			}
		}
		if tm.Enums != nil && tm.Enums[i] != nil {
			ci.Enum = tm.Enums[i]
		} else if sc != nil {
			ci.Enum = sc.Enum
		}
		if tm.Sets != nil && tm.Sets[i] != nil {
			ci.Set = tm.Sets[i]
		} else if sc != nil {
			ci.Set = sc.Set
		}
		if sc != nil {
			ci.Kind = sc.Kind
		}
	}
	switch {
	case tm.PK != nil:
		ti.pk = tm.PK
	case useSchema:
		ti.pk = ts.PK
	}
	var keys []byte
	ends := make([]int, n)
	for i := range ti.cols {
		keys = events.AppendJSONString(keys, ti.cols[i].Name)
		keys = append(keys, ':')
		ends[i] = len(keys)
	}
	ti.colKeys = make([][]byte, n)
	for i, off := range ends {
		start := 0
		if i > 0 {
			start = ends[i-1]
		}
		ti.colKeys[i] = keys[start:off:off]
	}
	ti.stream = ti.db + "." + ti.table
	ns := ti.db
	ti.ns = &ns
	return ti
}
