package redshift

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/format"
	"github.com/rivven/rivven-connect/shared/sqlrow"
)

// deletedCol marks the staging table's rows that delete their key.
const deletedCol = "_rivven_deleted"

// maxParams bounds one INSERT's parameters (pgx's simple protocol puts
// them in the text; Redshift takes statements up to 16 MB).
const maxParams = 16384

// writeTx writes ops in one transaction: in insert mode runs of rows
// (INSERT or COPY into the table) and runs of deletes in batch order; in
// upsert mode each key's last op through a staging table.
func (s *Sink) writeTx(ctx context.Context, t *table, ops []op) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	var staged []string
	defer func() {
		// The files of a failed batch go too; a retry stages them again.
		if err != nil && s.s3 != nil {
			for _, k := range staged {
				_ = s.s3.Delete(ctx, k)
			}
		}
	}()
	if s.cfg.Mode == ModeInsert {
		for i := 0; i < len(ops); {
			j := i + 1
			for j < len(ops) && ops[j].del == ops[i].del {
				j++
			}
			if ops[i].del {
				err = s.deleteKeys(ctx, tx, t, ops[i:j])
			} else {
				var key string
				key, err = s.load(ctx, tx, t.name, t, columnsOf(t, ops[i:j], false), ops[i:j], false)
				if key != "" {
					staged = append(staged, key)
				}
			}
			if err != nil {
				return err
			}
			i = j
		}
	} else {
		// Runs of ops with the same key columns (they differ only when
		// events' keys name different fields).
		for i := 0; i < len(ops); {
			j := i + 1
			for j < len(ops) && sameKeys(ops[j].keys, ops[i].keys) {
				j++
			}
			keys, err := s.upsert(ctx, tx, t, collapse(ops[i:j]))
			staged = append(staged, keys...)
			if err != nil {
				return err
			}
			i = j
		}
	}
	if err = tx.Commit(); err == nil && s.s3 != nil && !s.cfg.S3.KeepFiles {
		for _, k := range staged {
			// A file left behind costs storage only: the lifecycle rule
			// the README suggests removes it.
			_ = s.s3.Delete(ctx, k)
		}
	}
	return err
}

// collapse keeps each key's last op, in the order of those last ops: the
// state a sequence of upserts and deletes leaves, as one set of rows
// that MERGE (which refuses two source rows for one target row) takes.
func collapse(ops []op) []op {
	last := make(map[string]int, len(ops))
	for i, o := range ops {
		last[o.key] = i
	}
	out := make([]op, 0, len(last))
	for i, o := range ops {
		if last[o.key] == i {
			out = append(out, o)
		}
	}
	return out
}

// columnsOf is the table's columns (in table order) that some row of ops
// sets; with keys, the key columns of deletes too. Columns no row sets
// keep their defaults; a row without a column the others set writes NULL.
func columnsOf(t *table, ops []op, keys bool) []*column {
	seen := map[string]bool{}
	for _, o := range ops {
		if o.del && !keys {
			continue
		}
		for c := range o.vals {
			seen[c] = true
		}
	}
	var out []*column
	for _, c := range t.cols {
		if seen[c.Name] {
			out = append(out, c)
		}
	}
	return out
}

// upsert loads the ops into a temporary staging table with a deleted
// flag, then deletes the flagged keys and merges (or deletes and
// inserts) the rest, all in tx: Redshift's staging-table pattern.
func (s *Sink) upsert(ctx context.Context, tx *sql.Tx, t *table, ops []op) ([]string, error) {
	keys := ops[0].keys
	cols := columnsOf(t, ops, true)
	var b [6]byte
	_, _ = rand.Read(b[:])
	stage := "rivven_stage_" + hex.EncodeToString(b[:])
	defs := make([]string, 0, len(cols)+1)
	for _, c := range cols {
		defs = append(defs, quote(c.Name)+" "+c.Full)
	}
	defs = append(defs, quote(deletedCol)+" BOOLEAN")
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("CREATE TEMP TABLE %s (%s)", quote(stage), strings.Join(defs, ", "))); err != nil {
		return nil, err
	}
	key, err := s.load(ctx, tx, stage, t, cols, ops, true)
	var staged []string
	if key != "" {
		staged = append(staged, key)
	}
	if err != nil {
		return staged, err
	}
	tq, sq := quote(t.name), quote(stage)
	match := make([]string, len(keys))
	for i, k := range keys {
		match[i] = fmt.Sprintf("%s.%s = %s.%s", tq, quote(k), sq, quote(k))
	}
	on := strings.Join(match, " AND ")
	var stmts []string
	if s.cfg.UpsertMethod == UpsertDeleteInsert {
		names := quotedNames(cols)
		stmts = []string{
			fmt.Sprintf("DELETE FROM %s USING %s WHERE %s", tq, sq, on),
			fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s WHERE NOT %s", tq, names, names, sq, quote(deletedCol)),
		}
	} else {
		stmts = []string{
			fmt.Sprintf("DELETE FROM %s USING %s WHERE %s AND %s.%s", tq, sq, on, sq, quote(deletedCol)),
			fmt.Sprintf("DELETE FROM %s WHERE %s", sq, quote(deletedCol)),
			mergeStatement(tq, sq, on, cols, keys),
		}
	}
	stmts = append(stmts, "DROP TABLE "+sq)
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return staged, err
		}
	}
	return staged, nil
}

// mergeStatement is Redshift's MERGE (which PostgreSQL 15 also runs):
// both clauses, the target named in full (Redshift's MERGE has no target
// alias), SET columns unqualified.
func mergeStatement(tq, sq, on string, cols []*column, keys []string) string {
	var set, names, vals []string
	for _, c := range cols {
		q := quote(c.Name)
		names = append(names, q)
		vals = append(vals, sq+"."+q)
		if !isKey(keys, c.Name) {
			set = append(set, q+" = "+sq+"."+q)
		}
	}
	if len(set) == 0 {
		// Only key columns: MATCHED still needs an action.
		k := quote(keys[0])
		set = []string{k + " = " + sq + "." + k}
	}
	return fmt.Sprintf("MERGE INTO %s USING %s ON %s WHEN MATCHED THEN UPDATE SET %s WHEN NOT MATCHED THEN INSERT (%s) VALUES (%s)",
		tq, sq, on, strings.Join(set, ", "), strings.Join(names, ", "), strings.Join(vals, ", "))
}

func sameKeys(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}

func quotedNames(cols []*column) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = quote(c.Name)
	}
	return strings.Join(q, ", ")
}

// load puts ops' rows into the table named into: a COPY from a staged
// file when the batch reaches copy_threshold and s3 is set, else
// multi-row INSERTs. flag adds the staging table's deleted column. It
// returns the staged file's key, if any.
func (s *Sink) load(ctx context.Context, tx *sql.Tx, into string, t *table, cols []*column, ops []op, flag bool) (string, error) {
	if s.s3 != nil && s.cfg.CopyThreshold > 0 && len(ops) >= s.cfg.CopyThreshold {
		return s.copyLoad(ctx, tx, into, t, cols, ops, flag)
	}
	names := quotedNames(cols)
	if flag {
		names += ", " + quote(deletedCol)
	}
	width := len(cols)
	if flag {
		width++
	}
	per := max(1, maxParams/width)
	for i := 0; i < len(ops); i += per {
		chunk := ops[i:min(i+per, len(ops))]
		var b strings.Builder
		args := make([]any, 0, len(chunk)*width)
		fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES ", quote(into), names)
		for r, o := range chunk {
			if r > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			for j, c := range cols {
				if j > 0 {
					b.WriteString(", ")
				}
				args = append(args, o.args[c.Name])
				b.WriteString(sqlrow.Postgres.Placeholder(len(args)))
			}
			if flag {
				args = append(args, o.del)
				b.WriteString(", " + sqlrow.Postgres.Placeholder(len(args)))
			}
			b.WriteByte(')')
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return "", err
		}
	}
	return "", nil
}

// deleteKeys deletes the keys of a run of delete ops (insert mode).
func (s *Sink) deleteKeys(ctx context.Context, tx *sql.Tx, t *table, ops []op) error {
	per := max(1, maxParams/len(ops[0].keys))
	for i := 0; i < len(ops); i += per {
		chunk := ops[i:min(i+per, len(ops))]
		var b strings.Builder
		var args []any
		fmt.Fprintf(&b, "DELETE FROM %s WHERE ", quote(t.name))
		for r, o := range chunk {
			if r > 0 {
				b.WriteString(" OR ")
			}
			b.WriteByte('(')
			for j, k := range o.keys {
				if j > 0 {
					b.WriteString(" AND ")
				}
				args = append(args, o.args[k])
				b.WriteString(quote(k) + " = " + sqlrow.Postgres.Placeholder(len(args)))
			}
			b.WriteByte(')')
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// copyLoad stages the rows as a gzip JSON Lines file (shared/format's
// writer) in S3 (shared/objstore's) and runs COPY in tx. The key is
// derived from the batch's delivery ids when it has them, so a
// redelivered batch overwrites its own file.
func (s *Sink) copyLoad(ctx context.Context, tx *sql.Tx, into string, t *table, cols []*column, ops []op, flag bool) (string, error) {
	enc, err := format.New(format.Options{Format: format.JSONL, Envelope: format.EnvelopeRow, Compression: "gzip"})
	if err != nil {
		return "", err
	}
	evs := make([]*events.Event, len(ops))
	h := sha256.New()
	h.Write([]byte(into))
	for i, o := range ops {
		row := make(map[string]any, len(cols)+1)
		for _, c := range cols {
			row[c.Name] = o.vals[c.Name]
		}
		if flag {
			row[deletedCol] = o.del
		}
		b, err := json.Marshal(row)
		if err != nil {
			return "", err
		}
		h.Write(b)
		evs[i] = events.New(events.Insert, "stage", events.RawPayload(b))
	}
	var buf bytes.Buffer
	if err := enc.Encode(&buf, evs); err != nil {
		return "", err
	}
	key := s.objectKey(strings.ReplaceAll(t.name, ".", "/") + "/" + hex.EncodeToString(h.Sum(nil))[:32] + enc.Extension())
	if err := s.s3.Put(ctx, key, buf.Bytes(), enc.ContentType(), enc.ContentEncoding()); err != nil {
		return "", fmt.Errorf("stage %s/%s: %w", s.s3.URL(), key, err)
	}
	s.copies.Inc()
	s.copyBytes.Add(uint64(buf.Len()))
	names := make([]string, 0, len(cols)+1)
	for _, c := range cols {
		names = append(names, c.Name)
	}
	if flag {
		names = append(names, deletedCol)
	}
	stmt := copyStatement(into, names, "s3://"+s.cfg.S3.Bucket+"/"+key, s.cfg.IAMRole, s.cfg.S3.Region)
	return key, s.runCopy(ctx, tx, stmt)
}

// objectKey puts name under the configured prefix.
func (s *Sink) objectKey(name string) string {
	p := strings.Trim(s.cfg.S3.Prefix, "/")
	if p == "" {
		return name
	}
	return path.Join(p, name)
}

// copyStatement renders COPY as Redshift documents it (see
// testdata/copy-examples.sql): the column list so JSON 'auto' maps keys
// to exactly these columns, IAM_ROLE, FORMAT AS JSON 'auto', GZIP, and
// TIMEFORMAT/DATEFORMAT 'auto' for the ISO times the rows carry.
func copyStatement(table string, cols []string, from, role, region string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = quote(c)
	}
	var b strings.Builder
	if role != "default" { // the cluster's default role is a keyword
		role = literal(role)
	}
	fmt.Fprintf(&b, "COPY %s (%s) FROM %s IAM_ROLE %s", quote(table), strings.Join(q, ", "), literal(from), role)
	if region != "" {
		fmt.Fprintf(&b, " REGION %s", literal(region))
	}
	b.WriteString(" FORMAT AS JSON 'auto' GZIP TIMEFORMAT 'auto' DATEFORMAT 'auto'")
	return b.String()
}

// literal quotes a string for Redshift, which (unlike PostgreSQL's
// standard strings) reads a backslash as an escape: both are doubled.
func literal(s string) string { return sqlrow.QuoteLiteral(s) }
