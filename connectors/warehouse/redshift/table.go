package redshift

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/rivven/rivven-connect/shared/sqlrow"
)

// column is a column of the target table with what checking its values
// needs.
type column struct {
	sqlrow.Column
	num  int // attnum
	kind sqlrow.Kind
	// integer range (kInt), numeric precision and scale, character length
	bits             int
	prec, scale, len int
}

// table is the target table as the catalog describes it.
type table struct {
	name   string // as configured
	cols   []*column
	byName map[string]*column
	pk     []string
}

// describe reads the table's columns and primary key through the
// catalog views Redshift and PostgreSQL share (pg_attribute, pg_class,
// pg_namespace, pg_constraint, format_type): Redshift's catalog is
// PostgreSQL 8.0's, without information_schema's key views or pg_index
// arrays. nil without error when the table does not exist.
func describe(ctx context.Context, db *sql.DB, name string) (*table, error) {
	schema, rel := "current_schema()", name
	if i := strings.IndexByte(name, '.'); i >= 0 {
		schema, rel = sqlrow.QuoteLiteral(name[:i]), name[i+1:]
	}
	oid := fmt.Sprintf("(SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s)", schema, sqlrow.QuoteLiteral(rel))
	rows, err := db.QueryContext(ctx, `SELECT a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
		FROM pg_attribute a WHERE a.attrelid = `+oid+` AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`)
	if err != nil {
		return nil, err
	}
	t := &table{name: name, byName: map[string]*column{}}
	byNum := map[int]string{}
	for rows.Next() {
		c := &column{}
		if err := rows.Scan(&c.num, &c.Name, &c.Full, &c.Nullable); err != nil {
			rows.Close()
			return nil, err
		}
		c.parseType()
		t.cols = append(t.cols, c)
		t.byName[c.Name] = c
		byNum[c.num] = c.Name
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(t.cols) == 0 {
		return nil, nil
	}
	var conkey sql.NullString
	err = db.QueryRowContext(ctx, `SELECT conkey FROM pg_constraint WHERE conrelid = `+oid+` AND contype = 'p'`).Scan(&conkey)
	if err != nil && err != sql.ErrNoRows {
		return nil, err
	}
	if conkey.Valid {
		nums, _ := sqlrow.ParsePGArray(conkey.String)
		for _, n := range nums {
			i, _ := strconv.Atoi(fmt.Sprint(n))
			t.pk = append(t.pk, byNum[i])
		}
	}
	return t, nil
}

// parseType sets the kind and the limits from format_type's text, like
// numeric(12,2), character varying(20), timestamp without time zone.
func (c *column) parseType() {
	full := strings.ToLower(c.Full)
	base, args := full, ""
	if i := strings.IndexByte(full, '('); i >= 0 {
		base = strings.TrimSpace(full[:i])
		if j := strings.IndexByte(full[i:], ')'); j > 0 {
			args = full[i+1 : i+j]
			base = strings.TrimSpace(base + full[i+j+1:]) // timestamp(3) without time zone
		}
	}
	c.Type = base
	c.kind = sqlrow.KindOf(sqlrow.Postgres, base)
	var a []int
	for _, s := range strings.Split(args, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			a = append(a, n)
		}
	}
	switch base {
	case "smallint":
		c.bits = 16
	case "integer":
		c.bits = 32
	case "bigint":
		c.bits = 64
	case "numeric":
		if len(a) > 0 {
			c.prec = a[0]
		}
		if len(a) > 1 {
			c.scale = a[1]
		}
	case "character varying", "character", "varchar", "char":
		if len(a) > 0 {
			c.len = a[0]
		}
	}
}

// check validates an event's value for the column before it goes to the
// server, so that a bad row is named with its column and reason (and a
// COPY never fails on it): Redshift reports load errors only in
// sys_load_error_detail, per file, not per row. It returns the value to
// stage (JSON) and to bind (SQL parameter).
func (c *column) check(v any) (stage any, bind any, err error) {
	fail := func(f string, a ...any) (any, any, error) {
		return nil, nil, fmt.Errorf("column %s (%s): %s", c.Name, c.Full, fmt.Sprintf(f, a...))
	}
	if v == nil {
		if !c.Nullable {
			return fail("null into a NOT NULL column")
		}
		return nil, nil, nil
	}
	switch c.kind {
	case sqlrow.KInt:
		s, ok := numberText(v)
		if !ok {
			return fail("expected an integer, got %s", describeValue(v))
		}
		n, ok := new(big.Int).SetString(s, 10)
		if !ok {
			return fail("%s is not an integer", s)
		}
		if c.bits > 0 {
			hi := new(big.Int).Lsh(big.NewInt(1), uint(c.bits-1))
			lo := new(big.Int).Neg(hi)
			if n.Cmp(lo) < 0 || n.Cmp(hi) >= 0 {
				return fail("%s overflows %s", s, c.Type)
			}
		}
		return json.Number(s), s, nil
	case sqlrow.KNumber:
		s, ok := numberText(v)
		if !ok {
			if str, isStr := v.(string); isStr && c.Type != "numeric" && (str == "NaN" || str == "Infinity" || str == "-Infinity") {
				return str, str, nil
			}
			return fail("expected a number, got %s", describeValue(v))
		}
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			return fail("%s is not a number", s)
		}
		if c.prec > 0 {
			// Digits left of the point: at most precision - scale.
			ip := new(big.Int).Quo(r.Num(), r.Denom())
			ip.Abs(ip)
			if len(ip.String()) > c.prec-c.scale && ip.Sign() != 0 {
				return fail("%s overflows numeric(%d,%d)", s, c.prec, c.scale)
			}
		}
		return json.Number(s), s, nil
	case sqlrow.KBool:
		switch x := v.(type) {
		case bool:
			return x, x, nil
		case string:
			switch strings.ToLower(x) {
			case "true", "t":
				return true, true, nil
			case "false", "f":
				return false, false, nil
			}
		}
		return fail("expected a boolean, got %s", describeValue(v))
	case sqlrow.KDate, sqlrow.KTimestamp, sqlrow.KTimestampTZ:
		s, ok := v.(string)
		if !ok {
			return fail("expected an ISO 8601 date or timestamp, got %s", describeValue(v))
		}
		t, err := sqlrow.ParseTime(s)
		if err != nil {
			return fail("%v", err)
		}
		var out string
		switch c.kind {
		case sqlrow.KDate:
			out = t.Format(sqlrow.LayoutDate)
		case sqlrow.KTimestampTZ:
			out = t.UTC().Format("2006-01-02 15:04:05.999999+00")
		default:
			out = t.Format("2006-01-02 15:04:05.999999")
		}
		return out, out, nil
	}
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case json.Number:
		s = string(x)
	case bool:
		s = strconv.FormatBool(x)
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return fail("%v", err)
		}
		s = string(b)
	}
	if c.len > 0 && len(s) > c.len {
		// Redshift's lengths are bytes (PostgreSQL's characters): the
		// stricter rule holds for both.
		return fail("%d bytes exceed %s", len(s), c.Full)
	}
	if !utf8.ValidString(s) {
		return fail("not valid UTF-8")
	}
	if strings.ContainsRune(s, 0) {
		return fail("contains a NUL character")
	}
	return s, s, nil
}

// numberText is a JSON number's or a numeric string's text.
func numberText(v any) (string, bool) {
	switch x := v.(type) {
	case json.Number:
		return string(x), true
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), true
	case string:
		s := strings.TrimSpace(x)
		if _, ok := new(big.Rat).SetString(s); ok && s != "" && !strings.ContainsAny(s, "/") {
			return s, true
		}
	}
	return "", false
}

// describeValue shows a string (shortened), else its JSON type.
func describeValue(v any) string {
	if x, ok := v.(string); ok {
		if len(x) > 40 {
			x = x[:40] + "…"
		}
		return strconv.Quote(x)
	}
	return sqlrow.JSONType(v)
}
