package iceberg

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	ice "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/resilience"
)

// keyFields are the table's identifier fields, which upsert keys rows by,
// checked against identifier_columns.
func (s *Sink) keyFields(schema *ice.Schema) ([]ice.NestedField, error) {
	ids := schema.IdentifierFieldIDs
	if len(ids) == 0 {
		return nil, connector.Fatal(fmt.Errorf("iceberg: commit_mode upsert: table %s has no identifier fields (set them on the table, or let this sink create it with identifier_columns)", strings.Join(s.ident, ".")))
	}
	fields := make([]ice.NestedField, 0, len(ids))
	names := make([]string, 0, len(ids))
	for _, id := range ids {
		f, ok := schema.FindFieldByID(id)
		if !ok {
			return nil, connector.Fatal(fmt.Errorf("iceberg: identifier field id %d is not in the schema of %s", id, strings.Join(s.ident, ".")))
		}
		fields = append(fields, f)
		names = append(names, f.Name)
	}
	if want := s.cfg.IdentifierColumns; len(want) > 0 && !sameSet(want, names) {
		return nil, connector.Fatal(fmt.Errorf("iceberg: identifier_columns %v differ from the identifier fields %v of table %s", want, names, strings.Join(s.ident, ".")))
	}
	return fields, nil
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// withIdentifiers makes the columns of identifier_columns required
// identifier fields of a schema this sink creates.
func (s *Sink) withIdentifiers(schema *ice.Schema) (*ice.Schema, error) {
	if s.cfg.CommitMode != CommitUpsert {
		return schema, nil
	}
	if len(s.cfg.IdentifierColumns) == 0 {
		return nil, connector.Fatal(errors.New("iceberg: commit_mode upsert: identifier_columns is required to create the table (its identifier fields)"))
	}
	fields := schema.Fields()
	var ids []int
	for _, col := range s.cfg.IdentifierColumns {
		i := slices.IndexFunc(fields, func(f ice.NestedField) bool { return f.Name == col })
		if i < 0 {
			return nil, connector.Fatal(fmt.Errorf("iceberg: identifier_columns: %q is not a column of the rows (columns: %s)", col, columnList(schema)))
		}
		switch fields[i].Type.(type) {
		case ice.Float32Type, ice.Float64Type:
			return nil, connector.Fatal(fmt.Errorf("iceberg: identifier_columns: %q is a %s column; Iceberg identifier fields cannot be floating point", col, fields[i].Type))
		}
		fields[i].Required = true
		ids = append(ids, fields[i].ID)
	}
	return ice.NewSchemaWithIdentifiers(schema.ID, ids, fields...), nil
}

// upsert stages, in txn, one row delta: an equality delete of every key
// of the batch and the batch's last row of each key that is not a delete.
// Iceberg applies an equality delete only to data files of earlier
// sequence numbers, so the rows added in the same snapshot stay. Rows that
// do not fit (a null or mistyped key, a value the table cannot hold) fail
// alone in failed and delete nothing. It returns the rows the snapshot
// accounts for (superseded ones included).
func (s *Sink) upsert(ctx context.Context, txn *table.Transaction, schema *ice.Schema, rows []row, props ice.Properties, failed map[int]error) ([]row, error) {
	keys, err := s.keyFields(schema)
	if err != nil {
		return nil, err
	}
	keySchema := ice.NewSchema(schema.ID, keys...)
	// Check every row first, so that a failing row changes nothing.
	var upserts []row
	for _, r := range rows {
		if r.Event.Type != events.Delete {
			upserts = append(upserts, r)
		}
	}
	for _, check := range []struct {
		sc   *ice.Schema
		rows []row
	}{{keySchema, rows}, {schema, upserts}} {
		rec, _, err := buildRecord(check.sc, check.rows, failed)
		if err != nil {
			return nil, err
		}
		if rec != nil {
			rec.Release()
		}
	}
	// The last event of each key wins.
	var (
		ok     []row
		last   = map[string]int{}
		order  []string
		latest []row
	)
	for _, r := range rows {
		if _, bad := failed[r.Index]; bad {
			continue
		}
		ok = append(ok, r)
		k, err := keyOf(keys, r)
		if err != nil {
			return nil, err
		}
		if _, seen := last[k]; !seen {
			order = append(order, k)
		}
		last[k] = len(ok) - 1
	}
	if len(ok) == 0 {
		return nil, nil
	}
	var inserts []row
	for _, k := range order {
		r := ok[last[k]]
		latest = append(latest, r)
		if r.Event.Type != events.Delete {
			inserts = append(inserts, r)
		}
	}

	delRec, _, err := buildRecord(keySchema, latest, failed)
	if err != nil {
		return nil, err
	}
	ids := make([]int, len(keys))
	for i, f := range keys {
		ids[i] = f.ID
	}
	delFiles, err := txn.WriteEqualityDeletes(ctx, ids, one(delRec))
	if err != nil {
		return nil, fmt.Errorf("iceberg: writing equality deletes of %s: %w", strings.Join(s.ident, "."), err)
	}
	rd := txn.NewRowDelta(props).AddDeletes(delFiles...)
	if len(inserts) > 0 {
		insRec, _, err := buildRecord(schema, inserts, failed)
		if err != nil {
			return nil, err
		}
		staged, err := txn.StagedTable()
		if err != nil {
			return nil, err
		}
		for df, err := range table.WriteRecords(ctx, staged.Table, insRec.Schema(), one(insRec)) {
			if err != nil {
				return nil, fmt.Errorf("iceberg: writing data files of %s: %w", strings.Join(s.ident, "."), err)
			}
			rd.AddRows(df)
		}
	}
	if err := rd.Commit(ctx); err != nil {
		return nil, err
	}
	return ok, nil
}

// one yields rec once; the consumer releases it.
func one(rec arrow.RecordBatch) iter.Seq2[arrow.RecordBatch, error] {
	return func(yield func(arrow.RecordBatch, error) bool) {
		yield(rec, nil)
	}
}

// keyOf is a row's key: its converted key values, typed.
func keyOf(keys []ice.NestedField, r row) (string, error) {
	var b strings.Builder
	for _, f := range keys {
		v, err := convert(r.Cells[f.Name], f.Type)
		if err != nil {
			return "", resilience.New(resilience.Schema, fmt.Errorf("iceberg: key column %q: %w", f.Name, err))
		}
		fmt.Fprintf(&b, "%T:%v\x00", v, v)
	}
	return b.String(), nil
}
