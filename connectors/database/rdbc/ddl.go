package rdbc

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/rivven/rivven-connect/events"
)

var typeRE = regexp.MustCompile(`^([a-z ]+?)\s*(\(([0-9, ]+)\))?\s*(unsigned)?\s*(without time zone|with time zone)?(\[\])?$`)

// targetType maps a column type as either database declares it (the CDC
// sources and the rdbc source carry them in the event) to the target
// dialect's. key columns get a type that can be indexed (MySQL cannot
// index TEXT).
func targetType(d dialect, src string, key bool) string {
	t := strings.ToLower(strings.TrimSpace(src))
	if strings.HasPrefix(t, "_") {
		if d == postgres {
			return t[1:] + "[]"
		}
		return "JSON"
	}
	m := typeRE.FindStringSubmatch(t)
	if m == nil {
		return valueType(d, nil, key)
	}
	base, args, unsigned, tz, arr := m[1], m[3], m[4] != "", m[5], m[6] != ""
	// A bare "timestamp" is MySQL's instant type: PostgreSQL's
	// format_type always says with or without time zone.
	if arr {
		if d == postgres {
			return t
		}
		return "JSON"
	}
	paren := ""
	if args != "" {
		paren = "(" + args + ")"
	}
	pg := d == postgres
	pick := func(p, my string) string {
		if pg {
			return p
		}
		return my
	}
	switch base {
	case "smallint", "int2", "tinyint", "year":
		if base == "tinyint" && args == "1" && !pg {
			return "TINYINT(1)"
		}
		if unsigned {
			return pick("integer", "SMALLINT UNSIGNED")
		}
		return pick("smallint", "SMALLINT")
	case "integer", "int", "int4", "mediumint", "serial":
		if unsigned {
			return pick("bigint", "INT UNSIGNED")
		}
		return pick("integer", "INT")
	case "bigint", "int8", "bigserial":
		if unsigned {
			return pick("numeric(20)", "BIGINT UNSIGNED")
		}
		return pick("bigint", "BIGINT")
	case "numeric", "decimal":
		if paren == "" {
			return pick("numeric", "DECIMAL(65,30)")
		}
		return pick("numeric"+paren, "DECIMAL"+paren)
	case "real", "float4", "float":
		return pick("real", "FLOAT")
	case "double precision", "float8", "double":
		return pick("double precision", "DOUBLE")
	case "boolean", "bool":
		return pick("boolean", "BOOLEAN")
	case "character varying", "varchar":
		if paren == "" {
			return pick("text", "VARCHAR(255)")
		}
		return pick("varchar"+paren, "VARCHAR"+paren)
	case "character", "char", "bpchar":
		return pick("char"+paren, "CHAR"+paren)
	case "text", "tinytext", "mediumtext", "longtext", "name", "citext", "enum", "set", "xml", "interval":
		if key {
			return pick("text", "VARCHAR(255)")
		}
		return pick("text", "LONGTEXT")
	case "bytea", "blob", "tinyblob", "mediumblob", "longblob", "binary", "varbinary":
		if key {
			return pick("bytea", "VARBINARY(255)")
		}
		return pick("bytea", "LONGBLOB")
	case "date":
		return pick("date", "DATE")
	case "time":
		p := orDefault(args, "6")
		return pick("time("+p+")", "TIME("+p+")")
	case "timestamp", "datetime":
		p := orDefault(args, "6")
		if tz == "with time zone" || (base == "timestamp" && tz == "") {
			// An instant: timestamptz, or DATETIME holding UTC (MySQL's
			// TIMESTAMP stops in 2038).
			return pick("timestamp("+p+") with time zone", "DATETIME("+p+")")
		}
		return pick("timestamp("+p+") without time zone", "DATETIME("+p+")")
	case "timestamptz":
		return pick("timestamp with time zone", "DATETIME(6)")
	case "json", "jsonb":
		return pick("jsonb", "JSON")
	case "uuid":
		return pick("uuid", "UUID")
	}
	return pick("text", "LONGTEXT")
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// valueType is the column type for a JSON value when the event does not
// say what its source column was.
func valueType(d dialect, v any, key bool) string {
	pg := d == postgres
	pick := func(p, my string) string {
		if pg {
			return p
		}
		return my
	}
	switch x := v.(type) {
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return pick("bigint", "BIGINT")
		}
		return pick("numeric", "DECIMAL(65,30)")
	case float64:
		return pick("double precision", "DOUBLE")
	case bool:
		return pick("boolean", "BOOLEAN")
	case map[string]any, []any:
		return pick("jsonb", "JSON")
	}
	if key {
		return pick("text", "VARCHAR(255)")
	}
	return pick("text", "LONGTEXT")
}

// sourceTypes returns the event's column types by name (nil when the
// event does not carry them).
func sourceTypes(e *events.Event) map[string]string {
	if e.Source == nil || e.Source.Columns == "" {
		return nil
	}
	cols, err := events.ParseColumns(e.Source.Columns)
	if err != nil {
		return nil
	}
	m := make(map[string]string, len(cols))
	for _, c := range cols {
		m[c.Name] = c.Type
	}
	return m
}

// columnOrder is the order to create a table's columns in: the source
// table's when known, else by name.
func columnOrder(e *events.Event, row map[string]any) []string {
	var names []string
	seen := map[string]bool{}
	if e.Source != nil && e.Source.Columns != "" {
		if cols, err := events.ParseColumns(e.Source.Columns); err == nil {
			for _, c := range cols {
				if _, ok := row[c.Name]; ok {
					names = append(names, c.Name)
					seen[c.Name] = true
				}
			}
		}
	}
	var rest []string
	for n := range row {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(names, rest...)
}

// createTable renders CREATE TABLE for the event's row.
func createTable(d dialect, table string, e *events.Event, row map[string]any, key []string) string {
	types := sourceTypes(e)
	isKey := map[string]bool{}
	for _, k := range key {
		isKey[k] = true
	}
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE %s (", d.Quote(table))
	for i, n := range columnOrder(e, row) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(colDef(d, n, types[n], row[n], isKey[n]))
		if isKey[n] {
			b.WriteString(" NOT NULL")
		}
	}
	if len(key) > 0 {
		qs := make([]string, len(key))
		for i, k := range key {
			qs[i] = d.Quote(k)
		}
		fmt.Fprintf(&b, ", PRIMARY KEY (%s)", strings.Join(qs, ", "))
	}
	b.WriteString(")")
	return b.String()
}

func colDef(d dialect, name, srcType string, v any, key bool) string {
	t := valueType(d, v, key)
	if srcType != "" {
		t = targetType(d, srcType, key)
	}
	return d.Quote(name) + " " + t
}
