package postgrescdc

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
)

// table is a captured table as the catalog describes it.
type table struct {
	Schema, Name string
	Columns      []column
	PK           []string // primary key column names, in key order
	Identity     byte     // relreplident: d(efault), n(othing), f(ull), i(ndex)
	Estimate     int64    // reltuples; -1 unknown
}

type column struct {
	Name     string
	OID      uint32
	Type     string
	Nullable bool
}

func (t *table) fullName() string { return t.Schema + "." + t.Name }

func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

func (t *table) quoted() string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

// catalog runs metadata queries on a regular connection shared by the
// snapshot, the stream (relation look-ups) and the heartbeat.
type catalogConn struct {
	mu   sync.Mutex
	conn *pgx.Conn
}

func (c *catalogConn) close(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		_ = c.conn.Close(ctx)
	}
}

const tablesQuery = `
SELECT n.nspname, c.relname, c.relreplident::text,
       COALESCE(c.reltuples, -1)::bigint,
       COALESCE((SELECT array_agg(a.attname ORDER BY k.ord)
                   FROM pg_index i
                   CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                  WHERE i.indrelid = c.oid AND i.indisprimary), '{}')::text[],
       (SELECT array_agg(a.attname ORDER BY a.attnum) FROM pg_attribute a
         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '')::text[],
       (SELECT array_agg(a.atttypid::bigint ORDER BY a.attnum) FROM pg_attribute a
         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '')::bigint[],
       (SELECT array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) FROM pg_attribute a
         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '')::text[],
       (SELECT array_agg(NOT a.attnotnull ORDER BY a.attnum) FROM pg_attribute a
         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '')::bool[]
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
   AND n.nspname NOT LIKE 'pg_temp%'`

// listTables returns the ordinary tables; with publication set, only those
// it publishes (pg_publication_tables expands FOR ALL TABLES and schemas).
func listTables(ctx context.Context, conn *pgx.Conn, publication string) ([]*table, error) {
	q := tablesQuery
	var args []any
	if publication != "" {
		q += ` AND EXISTS (SELECT 1 FROM pg_publication_tables p WHERE p.pubname = $1 AND p.schemaname = n.nspname AND p.tablename = c.relname)`
		args = append(args, publication)
	}
	q += ` ORDER BY 1, 2`
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*table
	for rows.Next() {
		t := &table{}
		var ident string
		var names, types []string
		var oids []int64
		var nullable []bool
		if err := rows.Scan(&t.Schema, &t.Name, &ident, &t.Estimate, &t.PK, &names, &oids, &types, &nullable); err != nil {
			return nil, err
		}
		if ident != "" {
			t.Identity = ident[0]
		}
		for i, n := range names {
			t.Columns = append(t.Columns, column{Name: n, OID: uint32(oids[i]), Type: types[i], Nullable: nullable[i]})
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// tableFilter says which tables the config captures (schemas, tables)
// and which of those it snapshots (snapshot.include/exclude_tables).
type tableFilter struct {
	schemas map[string]bool
	tables  []string
}

func newFilter(schemas, tables []string) tableFilter {
	f := tableFilter{tables: tables}
	if len(schemas) > 0 {
		f.schemas = map[string]bool{}
		for _, s := range schemas {
			f.schemas[s] = true
		}
	}
	return f
}

func (f tableFilter) match(schema, name string) bool {
	if f.schemas != nil && !f.schemas[schema] {
		return false
	}
	if len(f.tables) == 0 {
		return true
	}
	return matchAny(f.tables, schema, name)
}

func matchAny(list []string, schema, name string) bool {
	for _, t := range list {
		s, n, _ := splitTable(t, false)
		if n == name && (s == "" || s == schema) {
			return true
		}
	}
	return false
}

// identityNote explains how a table's updates and deletes can be read.
func identityNote(t *table) string {
	switch t.Identity {
	case 'f':
		return ""
	case 'n':
		return "REPLICA IDENTITY NOTHING: updates and deletes fail on the server while the table is published; run ALTER TABLE " + t.quoted() + " REPLICA IDENTITY DEFAULT (with a primary key) or FULL"
	case 'i':
		return ""
	}
	if len(t.PK) == 0 {
		return "no primary key and REPLICA IDENTITY DEFAULT: updates and deletes fail on the server while the table is published; add a primary key or run ALTER TABLE " + t.quoted() + " REPLICA IDENTITY FULL"
	}
	return ""
}

// publicationTarget renders the FOR clause of CREATE PUBLICATION.
func publicationTarget(tables []string) string {
	if len(tables) == 0 {
		return "FOR ALL TABLES"
	}
	parts := make([]string, len(tables))
	for i, t := range tables {
		s, n, _ := splitTable(t, true)
		parts[i] = pgx.Identifier{s, n}.Sanitize()
	}
	return "FOR TABLE " + strings.Join(parts, ", ")
}

func describeTables(ts []*table) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.fullName()
	}
	return fmt.Sprintf("%d table(s): %s", len(ts), strings.Join(names, ", "))
}
