// Package sqlrow maps event rows to and from SQL rows: the dialects of
// the databases the SQL connectors write (quoting, placeholders), how an
// event's JSON value binds to a column of a given type and how a scanned
// value renders back to JSON, and which database errors are about a row
// (dead-letter it) rather than about the connection or the table. The
// rdbc connectors and the redshift sink share it.
package sqlrow

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	mysqldrv "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rivven/rivven-connect/shared/resilience"
)

// Dialect is what differs between the databases: quoting, placeholders,
// value forms, error codes.
type Dialect int

// The dialects. Redshift speaks PostgreSQL's.
const (
	Postgres Dialect = iota
	MySQL
)

func (d Dialect) String() string {
	if d == MySQL {
		return "mysql"
	}
	return "postgres"
}

// Quote quotes an identifier, or a schema.table pair.
func (d Dialect) Quote(name string) string {
	parts := strings.Split(name, ".")
	for i, p := range parts {
		if d == MySQL {
			parts[i] = "`" + strings.ReplaceAll(p, "`", "``") + "`"
		} else {
			parts[i] = `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
		}
	}
	return strings.Join(parts, ".")
}

// Placeholder returns the n-th (1-based) parameter placeholder.
func (d Dialect) Placeholder(n int) string {
	if d == MySQL {
		return "?"
	}
	return fmt.Sprintf("$%d", n)
}

// Column is one column of a table.
type Column struct {
	Name     string
	Type     string // the catalog's type: data_type, or udt_name for PostgreSQL arrays and user types
	Full     string // the full declaration (PostgreSQL format_type, MySQL COLUMN_TYPE)
	Nullable bool
}

// QuoteLiteral renders a string literal (for catalog queries and
// statements that take no parameters; values go as parameters).
func QuoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", "''") + "'"
}

// RowError reports whether err is about the data of the statement's rows
// (a value that does not fit, a constraint), which dead-letters the row,
// rather than about the connection or the server, which fails the batch.
func RowError(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code[:2] {
		case "22", "23": // data exception, integrity constraint violation
			return true
		}
		switch pe.Code {
		case "42804", // datatype mismatch
			"42703", // undefined column
			"42P18", // indeterminate datatype
			"21000": // cardinality (ON CONFLICT touching a row twice)
			return true
		}
		return false
	}
	var me *mysqldrv.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1048, // column cannot be null
			1054,       // unknown column
			1062,       // duplicate entry
			1264,       // out of range
			1265,       // data truncated
			1292,       // incorrect date/time value
			1366,       // incorrect value
			1367,       // illegal value
			1406,       // data too long
			1416,       // cannot get geometry object
			1451, 1452, // foreign key
			1690, // value out of range
			3140, // invalid JSON
			4025, // CHECK constraint failed
			1364, // field has no default
			4078: // illegal parameter data type
			return true
		}
	}
	return false
}

// Classify marks what retrying cannot fix.
func Classify(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code[:2] {
		case "28": // invalid authorization
			return resilience.New(resilience.Auth, err)
		case "42": // syntax error or access rule violation
			if pe.Code == "42501" {
				return resilience.New(resilience.Auth, err)
			}
			return resilience.New(resilience.Schema, err)
		}
	}
	var me *mysqldrv.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1044, 1045, 1142, 1143: // access denied
			return resilience.New(resilience.Auth, err)
		case 1146, 1049: // no such table, no such database
			return resilience.New(resilience.NotFound, err)
		}
	}
	return err
}

// KeyFields are the field names of an event key that is a JSON object,
// sorted; nil for any other key.
func KeyFields(key json.RawMessage) []string {
	if len(key) == 0 || key[0] != '{' {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(key, &m) != nil {
		return nil
	}
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
