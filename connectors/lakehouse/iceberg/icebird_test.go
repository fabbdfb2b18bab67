package iceberg

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	ice "github.com/apache/iceberg-go"
	icesql "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/table"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/testenv"
)

// jsValue is one value icebird returned: its JavaScript type (bigint,
// number, string, boolean, date, null, undefined) and the value as JSON
// (bigint as decimal text, date as ISO 8601 with milliseconds).
type jsValue struct {
	T string          `json:"t"`
	V json.RawMessage `json:"v"`
}

func (v jsValue) String() string { return v.T + ":" + string(v.V) }

// icebirdRead reads the table at its metadata file metadataLocation with
// icebird, a JavaScript Iceberg reader sharing no code with iceberg-go:
// metadata JSON, Avro manifest lists and manifests, Parquet data and
// delete files are all decoded by it (and its hyparquet). warehouse is the local
// warehouse directory, served over HTTP because icebird reads through
// fetch. icebird is pinned in .ci/node/package-lock.json; without node or
// the package the test skips, or fails under RIVVEN_REQUIRE_SERVICES=1.
func icebirdRead(t *testing.T, warehouse, metadataLocation string) []map[string]jsValue {
	t.Helper()
	dir := testenv.NodeModule(t, "icebird")
	srv := httptest.NewServer(http.FileServer(http.Dir(warehouse)))
	defer srv.Close()
	prefix := "file://" + warehouse
	if !strings.HasPrefix(metadataLocation, prefix+"/") {
		t.Fatalf("metadata %s is not in the warehouse %s", metadataLocation, prefix)
	}
	// Not path.Dir: it would clean file:/// to file:/.
	tableURL := metadataLocation[:strings.LastIndex(metadataLocation, "/metadata/")]
	cmd := exec.Command("node", "testdata/icebird-read.mjs", dir, prefix, srv.URL, tableURL, path.Base(metadataLocation))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("icebird: %v\n%s", err, stderr.String())
	}
	var res struct {
		Rows  []map[string]jsValue `json:"rows"`
		Error string               `json:"error"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("icebird output: %v: %.300s", err, out)
	}
	if res.Error != "" {
		t.Fatalf("icebird refused the table %s: %s", metadataLocation, res.Error)
	}
	return res.Rows
}

// jsWant is how icebird must return a value the test sent to a column
// of type typ, in jsValue's terms (the value as canonical text). Iceberg
// long is Parquet INT64, which hyparquet returns as BigInt; int, float
// and double are numbers; timestamps and dates are JavaScript Dates,
// which hold milliseconds (hyparquet divides microseconds by 1000), so a
// timestamp is compared at millisecond precision.
func jsWant(t *testing.T, typ ice.Type, sent any) (string, string) {
	t.Helper()
	if sent == nil {
		return "null", ""
	}
	v, err := convert(jsonValue(t, sent), typ)
	if err != nil {
		t.Fatalf("the test sent %v for a %s column: %v", sent, typ, err)
	}
	switch x := v.(type) {
	case bool:
		return "boolean", strconv.FormatBool(x)
	case string:
		return "string", x
	case int64:
		if _, ts := typ.(ice.TimestampTzType); ts {
			return "date", time.UnixMicro(x).UTC().Truncate(time.Millisecond).Format(jsISO)
		}
		if _, ts := typ.(ice.TimestampType); ts {
			return "date", time.UnixMicro(x).UTC().Truncate(time.Millisecond).Format(jsISO)
		}
		return "bigint", strconv.FormatInt(x, 10)
	case int32:
		if _, d := typ.(ice.DateType); d {
			return "date", time.Unix(int64(x)*86400, 0).UTC().Format(jsISO)
		}
		return "number", strconv.FormatFloat(float64(x), 'g', -1, 64)
	case float32:
		return "number", strconv.FormatFloat(float64(x), 'g', -1, 64)
	case float64:
		return "number", strconv.FormatFloat(x, 'g', -1, 64)
	}
	t.Fatalf("no JavaScript form for %T", v)
	return "", ""
}

// jsISO is Date.prototype.toISOString's format.
const jsISO = "2006-01-02T15:04:05.000Z07:00"

// jsonValue is sent as the sink sees it: decoded from its JSON text.
func jsonValue(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var out any
	if err := d.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// jsGot is got in jsWant's terms.
func jsGot(t *testing.T, got jsValue) (string, string) {
	t.Helper()
	switch got.T {
	case "null", "undefined":
		return "null", ""
	case "number":
		f, err := strconv.ParseFloat(string(got.V), 64)
		if err != nil {
			t.Fatalf("icebird number %s: %v", got.V, err)
		}
		return "number", strconv.FormatFloat(f, 'g', -1, 64)
	case "date":
		var s string
		if err := json.Unmarshal(got.V, &s); err != nil {
			t.Fatal(err)
		}
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatalf("icebird date %q: %v", s, err)
		}
		return "date", tm.UTC().Format(jsISO)
	}
	var s any
	if err := json.Unmarshal(got.V, &s); err != nil {
		t.Fatalf("icebird %s value %s: %v", got.T, got.V, err)
	}
	return got.T, fmt.Sprint(s)
}

// sentRow is one row as the test sent it, keyed by order_id.
type sentRow = map[string]any

// rowEvents turns rows into insert events delivered from topic at
// offsets from, from+1, ...
func rowEvents(t *testing.T, rows []sentRow, topic string, from int64) []*events.Event {
	t.Helper()
	out := make([]*events.Event, len(rows))
	for i, r := range rows {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		off := from + int64(i)
		out[i] = events.New(events.Insert, "orders", events.RawPayload(b))
		out[i].Delivered = &events.Position{Topic: topic, Offset: off, HasOffset: true, ID: fmt.Sprintf("%s-0-%d", topic, off)}
	}
	return out
}

// checkIcebird compares the rows icebird read with want, keyed by
// order_id: the same rows, each with exactly the schema's columns (a
// column a row was not sent reads null or undefined), every value of the
// JavaScript type its column's Iceberg type reads as and equal to what
// was sent.
func checkIcebird(t *testing.T, schema *ice.Schema, got []map[string]jsValue, want map[int64]sentRow) {
	t.Helper()
	cols := map[string]ice.Type{}
	for _, f := range schema.Fields() {
		cols[f.Name] = f.Type
	}
	seen := map[int64]bool{}
	bad := 0
	for _, r := range got {
		k, id := jsGot(t, r["order_id"])
		n, err := strconv.ParseInt(id, 10, 64)
		if k != "bigint" || err != nil {
			t.Fatalf("icebird row %v: order_id is not a bigint", r)
		}
		if seen[n] {
			t.Fatalf("icebird read order %d twice", n)
		}
		seen[n] = true
		sent, ok := want[n]
		if !ok {
			if bad++; bad <= 10 {
				t.Errorf("icebird read order %d, which the table must not hold: %v", n, r)
			}
			continue
		}
		if gk, wk := slices.Sorted(maps.Keys(r)), slices.Sorted(maps.Keys(cols)); !slices.Equal(gk, wk) {
			t.Fatalf("icebird row %d has columns %v, the schema %v", n, gk, wk)
		}
		for c, typ := range cols {
			wt, wv := jsWant(t, typ, sent[c])
			gt, gv := jsGot(t, r[c])
			if wt != gt || wv != gv {
				if bad++; bad <= 10 {
					t.Errorf("order %d column %s (%s): icebird read %s %q, sent %v: want %s %q", n, c, typ, gt, gv, sent[c], wt, wv)
				}
			}
		}
	}
	if len(seen) != len(want) {
		var missing []int64
		for id := range want {
			if !seen[id] {
				missing = append(missing, id)
			}
		}
		slices.Sort(missing)
		t.Errorf("icebird read %d rows, want %d; missing %v", len(seen), len(want), missing)
	}
}

func byID(rows ...[]sentRow) map[int64]sentRow {
	out := map[int64]sentRow{}
	for _, rs := range rows {
		for _, r := range rs {
			out[r["order_id"].(int64)] = r
		}
	}
	return out
}

// TestIcebirdReadsAppends: a table the sink wrote in three append
// commits, the second adding columns (a string and a long), is read by
// icebird at each of its three metadata versions: each version holds
// exactly the rows committed up to it, with the columns of its schema, the
// older data files' rows reading the added columns as missing.
func TestIcebirdReadsAppends(t *testing.T) {
	e := newEnv(t)
	s := e.sink(e.config(nil))
	ctx := context.Background()
	batch := func(from, n int, extra bool) []sentRow {
		var out []sentRow
		for i := from; i < from+n; i++ {
			r := sentRow{"order_id": int64(i), "customer": fmt.Sprintf("c%d é", i%7), "amount": float64(i) + 0.25, "paid": i%2 == 0}
			if i%5 == 0 {
				r["amount"] = nil // sent as JSON null
			}
			if extra && i%3 != 0 {
				r["coupon"] = fmt.Sprintf("SAVE%d", i%4)
				r["units"] = int64(i) * 1_000_000_007 // beyond int32
			}
			out = append(out, r)
		}
		return out
	}
	batches := [][]sentRow{batch(0, 40, false), batch(40, 30, true), batch(70, 20, true)}
	var versions []string
	var schemas []*ice.Schema
	for i, b := range batches {
		if err := s.Write(ctx, rowEvents(t, b, "cdc.orders", int64(i*100))); err != nil {
			t.Fatal(err)
		}
		tbl := e.load("analytics", "orders")
		versions = append(versions, tbl.MetadataLocation())
		schemas = append(schemas, tbl.Schema())
	}
	if _, ok := schemas[1].FindFieldByName("units"); !ok {
		t.Fatalf("schema after the second batch has no units column: %v", schemas[1])
	}
	for i, loc := range versions {
		checkIcebird(t, schemas[i], icebirdRead(t, e.warehouse, loc), byID(batches[:i+1]...))
	}

	// overwrite: the newest version holds only the last batch; the
	// manifests still list the replaced files, as deleted entries.
	e2 := newEnv(t)
	s2 := e2.sink(e2.config(func(c *Config) { c.CommitMode = CommitOverwrite }))
	for i, b := range batches {
		if err := s2.Write(ctx, rowEvents(t, b, "cdc.orders", int64(i*100))); err != nil {
			t.Fatal(err)
		}
	}
	tbl := e2.load("analytics", "orders")
	checkIcebird(t, tbl.Schema(), icebirdRead(t, e2.warehouse, tbl.MetadataLocation()), byID(batches[2]))
}

// TestIcebirdReadsPartitioned: tables partitioned by identity, bucket
// and day (a timestamptz column, values with milliseconds and one with
// microseconds) are read by icebird: every row once, with its values.
func TestIcebirdReadsPartitioned(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Config)
	}{
		{"identity", func(c *Config) { c.Partitioning, c.PartitionColumns = PartitionIdentity, []string{"customer"} }},
		{"bucket", func(c *Config) {
			c.Partitioning, c.PartitionColumns, c.PartitionBuckets = PartitionBucket, []string{"order_id"}, 4
		}},
		{"day", func(c *Config) {
			c.Partitioning, c.PartitionColumns, c.PartitionTimeUnit = PartitionTime, []string{"created_at"}, "day"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			s := e.sink(e.config(tc.mod))
			var rows []sentRow
			for i := range 60 {
				at := fmt.Sprintf("2024-03-0%dT10:%02d:%02d.%03dZ", 1+i%3, i, i%60, i*7%1000)
				if i == 59 {
					at = "2024-03-03T23:59:59.999999Z"
				}
				rows = append(rows, sentRow{"order_id": int64(i), "customer": fmt.Sprintf("c%d", i%7), "amount": float64(i) / 8, "created_at": at})
			}
			half := len(rows) / 2
			if err := s.Write(context.Background(), rowEvents(t, rows[:half], "cdc.orders", 0)); err != nil {
				t.Fatal(err)
			}
			if err := s.Write(context.Background(), rowEvents(t, rows[half:], "cdc.orders", int64(half))); err != nil {
				t.Fatal(err)
			}
			tbl := e.load("analytics", "orders")
			if spec := tbl.Spec(); spec.NumFields() != 1 {
				t.Fatalf("spec %v, want one field", spec)
			}
			checkIcebird(t, tbl.Schema(), icebirdRead(t, e.warehouse, tbl.MetadataLocation()), byID(rows))
		})
	}
}

// TestIcebirdReadsUpserts: icebird applies the equality delete files of
// commit_mode upsert: after a batch of updates, deletes and inserts, and
// after a later batch that inserts a deleted key again, updates and
// deletes, each key reads once at its last value and deleted keys not at
// all, at both metadata versions; unpartitioned, and partitioned by
// bucket of the key (delete files per partition).
func TestIcebirdReadsUpserts(t *testing.T) {
	t.Run("unpartitioned", func(t *testing.T) { testIcebirdReadsUpserts(t, 0, func(*Config) {}) })
	t.Run("bucket", func(t *testing.T) {
		testIcebirdReadsUpserts(t, 1, func(c *Config) {
			c.Partitioning, c.PartitionColumns, c.PartitionBuckets = PartitionBucket, []string{"order_id"}, 4
		})
	})
}

// testIcebirdReadsUpserts is TestIcebirdReadsUpserts for a table
// configured by mod, with a partition spec of specFields fields.
func testIcebirdReadsUpserts(t *testing.T, specFields int, mod func(*Config)) {
	e := newEnv(t)
	s := e.sink(e.config(func(c *Config) {
		c.CommitMode, c.IdentifierColumns = CommitUpsert, []string{"order_id"}
		mod(c)
	}))
	ctx := context.Background()
	// what cdc sends for a key
	row := func(id int, customer string) sentRow {
		return sentRow{"order_id": int64(id), "customer": customer, "amount": float64(id) + 0.25}
	}
	var first []*events.Event
	state := map[int64]sentRow{}
	for i := range 10 {
		first = append(first, cdc(events.Insert, i, "a", int64(i)))
		state[int64(i)] = row(i, "a")
	}
	batches := [][]*events.Event{first, {
		cdc(events.Update, 3, "b", 10),
		cdc(events.Delete, 5, "a", 11),
		cdc(events.Insert, 10, "a", 12),
		cdc(events.Update, 3, "c", 13),
		cdc(events.Insert, 7, "b", 14),
		cdc(events.Insert, 11, "a", 15),
		cdc(events.Delete, 11, "a", 16),
	}, {
		cdc(events.Insert, 5, "d", 20),
		cdc(events.Update, 0, "e", 21),
		cdc(events.Delete, 10, "a", 22),
	}}
	changes := []func(){nil, func() {
		delete(state, 5)
		state[3], state[7], state[10] = row(3, "c"), row(7, "b"), row(10, "a")
	}, func() {
		delete(state, 10)
		state[5], state[0] = row(5, "d"), row(0, "e")
	}}
	for i, b := range batches {
		if err := s.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
		if changes[i] != nil {
			changes[i]()
		}
		tbl := e.load("analytics", "orders")
		if spec := tbl.Spec(); spec.NumFields() != specFields {
			t.Fatalf("spec %v, want %d fields", spec, specFields)
		}
		checkIcebird(t, tbl.Schema(), icebirdRead(t, e.warehouse, tbl.MetadataLocation()), maps.Clone(state))
	}
}

// TestIcebirdReadsTypedColumns: into a table created beforehand (as by
// another engine) with int, float, date, timestamp and timestamptz
// columns, the sink writes a batch, then under schema_evolution full a
// batch whose values promote int to long and float to double. icebird
// reads the first version with the types it was written with (int and
// float as numbers, date and timestamps as Dates); in the second, the
// new rows read as long (BigInt) and double, while the first batch's rows
// keep the type their data files hold: icebird does not promote the
// values of older files (Iceberg readers should read them as long and
// double), so those rows are compared with the first schema.
func TestIcebirdReadsTypedColumns(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cat, err := icesql.NewCatalog(e.name, e.db, icesql.Postgres, ice.Properties{"warehouse": "file://" + e.warehouse})
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.CreateNamespace(ctx, table.Identifier{"analytics"}, nil); err != nil {
		t.Fatal(err)
	}
	sc := ice.NewSchema(0,
		ice.NestedField{ID: 1, Name: "order_id", Type: ice.PrimitiveTypes.Int64, Required: true},
		ice.NestedField{ID: 2, Name: "qty", Type: ice.PrimitiveTypes.Int32},
		ice.NestedField{ID: 3, Name: "price", Type: ice.PrimitiveTypes.Float32},
		ice.NestedField{ID: 4, Name: "day", Type: ice.PrimitiveTypes.Date},
		ice.NestedField{ID: 5, Name: "local_at", Type: ice.PrimitiveTypes.Timestamp},
		ice.NestedField{ID: 6, Name: "at", Type: ice.PrimitiveTypes.TimestampTz},
		ice.NestedField{ID: 7, Name: "note", Type: ice.PrimitiveTypes.String},
		ice.NestedField{ID: 8, Name: "ok", Type: ice.PrimitiveTypes.Bool},
	)
	if _, err := cat.CreateTable(ctx, table.Identifier{"analytics", "orders"}, sc); err != nil {
		t.Fatal(err)
	}
	s := e.sink(e.config(func(c *Config) { c.SchemaEvolution = EvolveFull }))
	var first, second []sentRow
	for i := range 20 {
		first = append(first, sentRow{
			"order_id": int64(i), "qty": -1_000_000 * i, "price": float64(i) / 4,
			"day":      fmt.Sprintf("1969-12-%02d", 12+i),
			"local_at": fmt.Sprintf("2024-02-29T23:59:%02d.%03d", i, i*37),
			"at":       fmt.Sprintf("2024-02-29T23:59:%02d.%03d+02:00", i, i*41),
			"note":     fmt.Sprintf("n%d\x00\u00e9\U0001F600", i), "ok": i%3 == 0,
		})
		if i%4 == 0 {
			first[i]["price"], first[i]["day"], first[i]["at"] = nil, nil, nil
		}
	}
	for i := 100; i < 110; i++ {
		second = append(second, sentRow{"order_id": int64(i), "qty": int64(i) * 100_000_000, "price": 0.1 * float64(i), "day": "2024-03-01", "note": "promoted"})
	}
	if err := s.Write(ctx, rowEvents(t, first, "cdc.typed", 0)); err != nil {
		t.Fatal(err)
	}
	v1 := e.load("analytics", "orders")
	checkIcebird(t, v1.Schema(), icebirdRead(t, e.warehouse, v1.MetadataLocation()), byID(first))

	if err := s.Write(ctx, rowEvents(t, second, "cdc.typed", 100)); err != nil {
		t.Fatal(err)
	}
	v2 := e.load("analytics", "orders")
	for name, typ := range map[string]ice.Type{"qty": ice.PrimitiveTypes.Int64, "price": ice.PrimitiveTypes.Float64} {
		if f, ok := v2.Schema().FindFieldByName(name); !ok || !f.Type.Equals(typ) {
			t.Fatalf("column %s after the second batch: %v, want promoted to %s", name, f, typ)
		}
	}
	var older, newer []map[string]jsValue
	for _, r := range icebirdRead(t, e.warehouse, v2.MetadataLocation()) {
		if _, id := jsGot(t, r["order_id"]); len(id) < 3 {
			older = append(older, r)
		} else {
			newer = append(newer, r)
		}
	}
	checkIcebird(t, v1.Schema(), older, byID(first))
	checkIcebird(t, v2.Schema(), newer, byID(second))
}
