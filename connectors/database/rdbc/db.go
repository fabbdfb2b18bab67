package rdbc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/rivven/rivven-connect/shared/sqlrow"
)

// openDB opens a pool for c. Both drivers are set up so that values go
// as text the server converts by the column's type (PostgreSQL's simple
// protocol, MySQL's interpolated parameters): an event's values are JSON
// (numbers as decimal text, times as ISO text), and the server's own
// conversion is exact where a client-side one through float64 or
// time.Time would not be. Sessions run in UTC so that zone-less
// timestamps mean the same on both sides.
func openDB(c Conn) (*sql.DB, dialect, error) {
	p, err := parseURL(c.URL)
	if err != nil {
		return nil, 0, err
	}
	var db *sql.DB
	switch p.dialect {
	case postgres:
		pc, err := pgx.ParseConfig(p.u.String())
		if err != nil {
			return nil, 0, errors.New("invalid postgres URL (check its parameters)")
		}
		pc.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		pc.RuntimeParams["timezone"] = "UTC"
		if pc.RuntimeParams["application_name"] == "" {
			pc.RuntimeParams["application_name"] = "rivven-connect rdbc"
		}
		db = stdlib.OpenDB(*pc)
	case mysql:
		mc, err := mysqlConfig(p)
		if err != nil {
			return nil, 0, err
		}
		conn, err := mysqldrv.NewConnector(mc)
		if err != nil {
			return nil, 0, err
		}
		db = sql.OpenDB(conn)
	}
	db.SetMaxOpenConns(c.MaxOpenConns)
	db.SetMaxIdleConns(c.MaxOpenConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, p.dialect, nil
}

func mysqlConfig(p dbURL) (*mysqldrv.Config, error) {
	mc := mysqldrv.NewConfig()
	mc.Net = "tcp"
	mc.Addr = p.u.Host
	if p.u.Port() == "" {
		mc.Addr += ":3306"
	}
	mc.User = p.u.User.Username()
	mc.Passwd, _ = p.u.User.Password()
	mc.DBName = strings.TrimPrefix(p.u.Path, "/")
	mc.InterpolateParams = true
	mc.ParseTime = false
	mc.Loc = time.UTC
	mc.Params = map[string]string{
		"time_zone": "'+00:00'",
		// Strict: a value that does not fit its column is an error (a
		// bad row for the dead-letter topic), never a silent truncation.
		"sql_mode": "'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
	}
	if len(p.u.RawQuery) == 0 {
		return mc, nil
	}
	// The URL's parameters are go-sql-driver's (tls, timeouts, charset,
	// system variables): let it parse them from the DSN form.
	dsn := mc.FormatDSN() + "&" + p.u.RawQuery
	out, err := mysqldrv.ParseDSN(dsn)
	if err != nil {
		// Its error may quote the DSN, password included.
		return nil, errors.New("invalid mysql URL parameters (see go-sql-driver/mysql's DSN parameters)")
	}
	return out, nil
}

// tableInfo is what the sink and the source need about a table.
type tableInfo struct {
	Name    string // as given (schema.table or table)
	Columns []column
	byName  map[string]*column
	PK      []string
	// Indexed is the set of columns that lead an index.
	Indexed map[string]bool
}

func (t *tableInfo) col(name string) *column {
	return t.byName[name]
}

// splitName returns the schema ("" for the connection's default) and the table.
func splitName(name string) (string, string) {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[:i], name[i+1:]
	}
	return "", name
}

// describe reads a table's columns, primary key and leading index
// columns; nil without error when the table does not exist.
func describe(ctx context.Context, db *sql.DB, d dialect, name string) (*tableInfo, error) {
	schema, table := splitName(name)
	var colQ, pkQ, idxQ string
	switch d {
	case postgres:
		if schema == "" {
			schema = "current_schema()"
		} else {
			schema = sqlrow.QuoteLiteral(schema)
		}
		rel := fmt.Sprintf("(SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s)", schema, sqlrow.QuoteLiteral(table))
		colQ = `SELECT a.attname, CASE WHEN t.typcategory = 'A' OR t.typtype <> 'b' THEN t.typname ELSE format_type(a.atttypid, NULL) END,
			format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
			FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
			WHERE a.attrelid = ` + rel + ` AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`
		pkQ = `SELECT a.attname FROM pg_index i JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord) ON true
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
			WHERE i.indrelid = ` + rel + ` AND i.indisprimary ORDER BY k.ord`
		idxQ = `SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
			WHERE i.indrelid = ` + rel
	case mysql:
		if schema == "" {
			schema = "DATABASE()"
		} else {
			schema = sqlrow.QuoteLiteral(schema)
		}
		where := " WHERE TABLE_SCHEMA = " + schema + " AND TABLE_NAME = " + sqlrow.QuoteLiteral(table)
		colQ = `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE = 'YES' FROM information_schema.COLUMNS` + where + ` ORDER BY ORDINAL_POSITION`
		pkQ = `SELECT COLUMN_NAME FROM information_schema.STATISTICS` + where + ` AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX`
		idxQ = `SELECT COLUMN_NAME FROM information_schema.STATISTICS` + where + ` AND SEQ_IN_INDEX = 1`
	}
	t := &tableInfo{Name: name, byName: map[string]*column{}, Indexed: map[string]bool{}}
	rows, err := db.QueryContext(ctx, colQ)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.Name, &c.Type, &c.Full, &c.Nullable); err != nil {
			rows.Close()
			return nil, err
		}
		c.Type = strings.ToLower(c.Type)
		t.Columns = append(t.Columns, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(t.Columns) == 0 {
		return nil, nil
	}
	for i := range t.Columns {
		t.byName[t.Columns[i].Name] = &t.Columns[i]
	}
	for q, add := range map[string]func(string){
		pkQ:  func(s string) { t.PK = append(t.PK, s) },
		idxQ: func(s string) { t.Indexed[s] = true },
	} {
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				rows.Close()
				return nil, err
			}
			add(s)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return t, nil
}
