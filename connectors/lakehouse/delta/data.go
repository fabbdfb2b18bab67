package deltalake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"

	"github.com/rivven/rivven-connect/shared/format"
)

// parquetCodec is the codec of a compression setting.
func parquetCodec(name string) compress.Codec {
	if c, ok := format.ParquetCodec(name); ok {
		return c
	}
	return &parquet.Snappy
}

// codecTag is the codec part of a data file's name, as Spark names them
// (part-00000-<uuid>.c000.snappy.parquet).
func codecTag(name string) string {
	switch name {
	case "none":
		return ""
	case "gzip":
		return ".gz"
	case "lz4":
		return ".lz4raw"
	}
	return "." + name
}

// dataCol is one column of a data file: a table column that is not a
// partition column.
type dataCol struct {
	name string
	typ  string // dt's name
	dt   *dtype
	idx  int // in the table schema
}

func leaf(t string) parquet.Node {
	switch t {
	case tLong:
		return parquet.Int(64)
	case tInteger:
		return parquet.Int(32)
	case tShort:
		return parquet.Int(16)
	case tByte:
		return parquet.Int(8)
	case tFloat:
		return parquet.Leaf(parquet.FloatType)
	case tDouble:
		return parquet.Leaf(parquet.DoubleType)
	case tBoolean:
		return parquet.Leaf(parquet.BooleanType)
	case tBinary:
		return parquet.Leaf(parquet.ByteArrayType)
	case tDate:
		return parquet.Date()
	case tTimestamp:
		// PROTOCOL.md: timestamp is microseconds with isAdjustedToUTC.
		return parquet.Timestamp(parquet.Microsecond)
	}
	return parquet.String()
}

func pvalue(v value, t string) parquet.Value {
	switch t {
	case tLong, tTimestamp:
		return parquet.Int64Value(v.i)
	case tInteger, tShort, tByte, tDate:
		return parquet.Int32Value(int32(v.i))
	case tFloat:
		return parquet.FloatValue(float32(v.f))
	case tDouble:
		return parquet.DoubleValue(v.f)
	case tBoolean:
		return parquet.BooleanValue(v.b)
	}
	return parquet.ByteArrayValue([]byte(v.s))
}

// encodeData writes rows (cells by table column index) as one Parquet
// file of the data columns, every column optional. Columns are in name
// order, the order of a parquet.Group.
func encodeData(cols []dataCol, rows [][]value, codec string) ([]byte, error) {
	sorted := append([]dataCol(nil), cols...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	g := parquet.Group{}
	first := make([]int, len(sorted)) // each column's first leaf column
	leaves := 0
	for j, c := range sorted {
		g[c.name] = parquet.Optional(c.dt.node())
		first[j] = leaves
		leaves += c.dt.leaves()
	}
	schema := parquet.NewSchema("spark_schema", g)
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[any](&buf, schema, parquet.Compression(parquetCodec(codec)), parquet.DataPageStatistics(true))
	batch := make([]parquet.Row, 0, 1024)
	flush := func() error {
		if _, err := w.WriteRows(batch); err != nil {
			return err
		}
		batch = batch[:0]
		return nil
	}
	lv := leveler{cols: make([][]parquet.Value, leaves)}
	for _, r := range rows {
		row := make(parquet.Row, 0, leaves)
		for j, c := range sorted {
			v := r[c.idx]
			if !c.dt.complex() {
				// One value at its own column: no shredding needed.
				if v.null {
					row = append(row, parquet.NullValue().Level(0, 0, first[j]))
				} else {
					row = append(row, leafValue(v, c.dt).Level(0, 1, first[j]))
				}
				continue
			}
			end := first[j] + c.dt.leaves()
			for k := first[j]; k < end; k++ {
				lv.cols[k] = lv.cols[k][:0]
			}
			lv.put(c.dt, true, v, first[j], 0, 0, 0)
			for k := first[j]; k < end; k++ {
				row = append(row, lv.cols[k]...)
			}
		}
		batch = append(batch, row)
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// stringStatsPrefix bounds string statistics, as Delta's
// dataSkippingStringPrefixLength (32) does.
const stringStatsPrefix = 32

// fileStats is the stats JSON of an add action (PROTOCOL.md, "Per-file
// Statistics"): numRecords and, per data column, nullCount, minValues and
// maxValues (not for booleans and binary; for strings a 32-character
// prefix as the minimum, and the maximum only when it is no longer).
func fileStats(cols []dataCol, rows [][]value) string {
	minV, maxV, nulls := map[string]any{}, map[string]any{}, map[string]any{}
	for _, c := range cols {
		if c.dt.complex() {
			// Spark collects no statistics of arrays and maps, and nests
			// those of structs; this sink leaves all three out.
			continue
		}
		var n int64
		var lo, hi *value
		for _, r := range rows {
			v := r[c.idx]
			if v.null {
				n++
				continue
			}
			if c.typ == tFloat || c.typ == tDouble {
				if math.IsNaN(v.f) || math.IsInf(v.f, 0) {
					continue
				}
			}
			if lo == nil || less(v, *lo, c.typ) {
				lo = &r[c.idx]
			}
			if hi == nil || less(*hi, v, c.typ) {
				hi = &r[c.idx]
			}
		}
		nulls[c.name] = n
		if lo == nil {
			continue
		}
		switch c.typ {
		case tBoolean, tBinary:
		case tString:
			minV[c.name] = truncate(lo.s)
			if utf8.RuneCountInString(hi.s) <= stringStatsPrefix {
				maxV[c.name] = hi.s
			}
		case "decimal":
			minV[c.name] = json.Number(decimalString(lo.x.(*big.Int), c.dt.scale))
			maxV[c.name] = json.Number(decimalString(hi.x.(*big.Int), c.dt.scale))
		default:
			minV[c.name], maxV[c.name] = statValue(*lo, c.typ), statValue(*hi, c.typ)
		}
	}
	b, _ := json.Marshal(map[string]any{"numRecords": len(rows), "minValues": minV, "maxValues": maxV, "nullCount": nulls})
	return string(b)
}

func less(a, b value, t string) bool {
	switch t {
	case tFloat, tDouble:
		return a.f < b.f
	case tString, tBinary:
		return a.s < b.s
	case tBoolean:
		return !a.b && b.b
	case "decimal":
		return a.x.(*big.Int).Cmp(b.x.(*big.Int)) < 0
	}
	return a.i < b.i
}

func truncate(s string) string {
	if utf8.RuneCountInString(s) <= stringStatsPrefix {
		return s
	}
	n := 0
	for i := range s {
		if n == stringStatsPrefix {
			return s[:i]
		}
		n++
	}
	return s
}

func statValue(v value, t string) any {
	switch t {
	case tFloat, tDouble:
		return v.f
	case tDate:
		return time.Unix(v.i*86400, 0).UTC().Format("2006-01-02")
	case tTimestamp:
		// Truncated down to milliseconds, as the protocol says readers
		// expect.
		return time.UnixMicro(v.i).UTC().Truncate(time.Millisecond).Format("2006-01-02T15:04:05.000Z07:00")
	}
	return v.i
}

// hiveDefault is the folder name of a null partition value.
const hiveDefault = "__HIVE_DEFAULT_PARTITION__"

// escapePartition escapes a partition folder name or value as Hive does
// (FileUtils.escapePathName): control characters and "#%'*/:=?\{[]^ as %XX.
func escapePartition(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || strings.IndexByte("\"#%'*/:=?\\{[]^", c) >= 0 {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// dataFileKey is a new data file's key under the table: the Hive-style
// partition folders (col=value/...) and a unique name.
func dataFileKey(partCols []string, values []*string, codec string) string {
	var b strings.Builder
	for i, c := range partCols {
		b.WriteString(escapePartition(c))
		b.WriteByte('=')
		if values[i] == nil {
			b.WriteString(hiveDefault)
		} else {
			b.WriteString(escapePartition(*values[i]))
		}
		b.WriteByte('/')
	}
	fmt.Fprintf(&b, "part-00000-%s.c000%s.parquet", uuid.NewString(), codecTag(codec))
	return b.String()
}

// addPath is a key as the add action's path: a relative URI, so the %
// of escaped partition values is itself escaped (%25), as Spark writes it.
func addPath(key string) string { return (&url.URL{Path: key}).EscapedPath() }
