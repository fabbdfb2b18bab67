package sqlservercdc

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSQLStoreReadsResults runs sqlStore's Go side (queries, scanning,
// parsing) on a database/sql driver that answers each query it
// recognizes with rows typed as go-mssqldb returns them (bit as bool,
// int/bigint as int64, binary(10) and decimal as []byte, NULL as nil).
// It does not check the SQL on a server: the text is only matched.
func TestSQLStoreReadsResults(t *testing.T) {
	l1 := lsn{0, 0, 0, 0x2a, 0, 0, 1, 0xf8, 0, 3}
	// datetime comes as the server's wall clock in UTC; the commit time
	// (datetimeoffset) with the offset the query gave it.
	local := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	commit := time.Date(2026, 3, 4, 10, 0, 0, 0, time.FixedZone("", -5*3600))
	d := &scripted{answers: []answer{
		{"FROM sys.databases", []string{"is_cdc_enabled"}, [][]driver.Value{{true}}},
		{"FROM sys.tables t JOIN sys.schemas", []string{"name", "is_tracked_by_cdc", "rows"}, [][]driver.Value{{"orders", true, int64(12)}, {"empty", false, nil}}},
		{"FROM cdc.change_tables ct", []string{"capture_instance", "name", "min", "perms"}, [][]driver.Value{{"dbo_orders", "orders", l1[:], int64(1)}, {"dbo_gone", "gone", nil, int64(0)}}},
		{"FROM cdc.captured_columns", []string{"column_name"}, [][]driver.Value{{"id"}, {"amount"}}},
		{"FROM cdc.index_columns", []string{"column_name"}, [][]driver.Value{{"id"}}},
		{"FROM sys.columns c", []string{"name", "type", "precision", "scale", "max_length", "is_nullable"}, [][]driver.Value{
			{"id", "int", int64(10), int64(0), int64(4), false}, {"amount", "decimal", int64(12), int64(4), int64(9), true}, {"note", "nvarchar", int64(0), int64(0), int64(-1), true}}},
		{"sys.fn_cdc_map_lsn_to_time(sys.fn_cdc_get_max_lsn()), SYSDATETIME()", []string{"", "", ""}, [][]driver.Value{{l1[:], local, local.Add(time.Second)}}},
		{"SELECT sys.fn_cdc_get_max_lsn()", []string{""}, [][]driver.Value{{nil}}},
		{"fn_cdc_get_all_changes_dbo_orders", []string{colStartLSN, colSeqval, colOp, colMask, "id", "amount", colCommitTime}, [][]driver.Value{{l1[:], l1[:], int64(2), []byte{3}, int64(1), []byte("1.5000"), commit}}},
		{"SELECT TOP (3) [id], [amount] FROM [dbo].[orders] WHERE ([id] > @p1) ORDER BY [id]", []string{"id", "amount"}, [][]driver.Value{{int64(2), []byte("2.0000")}}},
	}}
	st := &sqlStore{db: sql.OpenDB(d)}
	defer st.Close()
	ctx := context.Background()
	if on, err := st.DatabaseCDC(ctx); err != nil || !on {
		t.Fatalf("cdc %v %v", on, err)
	}
	tabs, err := st.Tables(ctx, "dbo")
	if err != nil || len(tabs) != 2 || tabs[0] != (tableRow{"orders", true, 12}) || tabs[1] != (tableRow{"empty", false, 0}) {
		t.Fatalf("tables %+v %v", tabs, err)
	}
	cis, err := st.CaptureInstances(ctx, "dbo")
	if err != nil || len(cis) != 2 || cis[0].MinLSN != l1 || !cis[0].Readable || strings.Join(cis[0].Columns, ",") != "id,amount" || cis[0].Index[0] != "id" ||
		!cis[1].MinLSN.isZero() || cis[1].Readable {
		t.Fatalf("instances %+v %v", cis, err)
	}
	cols, err := st.Columns(ctx, "dbo", "orders")
	if err != nil || len(cols) != 3 || cols[1].declared() != "decimal(12,4)" || cols[2].declared() != "nvarchar(max)" || cols[0].Nullable {
		t.Fatalf("columns %+v %v", cols, err)
	}
	if m, err := st.MaxLSN(ctx); err != nil || !m.isZero() {
		t.Fatalf("max %v %v", m, err)
	}
	if c, err := st.Capture(ctx); err != nil || c.Max != l1 || !c.MaxTime.Equal(local) || !c.Now.Equal(local.Add(time.Second)) {
		t.Fatalf("capture %+v %v", c, err)
	}
	rs, err := st.Changes(ctx, "dbo_orders", l1, l1)
	if err != nil || len(rs.Rows) != 1 || rs.index(colOp) != 2 {
		t.Fatalf("changes %+v %v", rs, err)
	}
	if q := d.last(); !strings.Contains(q.sql, "cdc.[fn_cdc_get_all_changes_dbo_orders](@p1, @p2, N'all update old') AS c") ||
		!strings.Contains(q.sql, "sys.fn_cdc_map_lsn_to_time(c.__$start_lsn)") || len(q.args) != 2 || string(q.args[0].([]byte)) != string(l1[:]) {
		t.Fatalf("changes query %q %v", q.sql, q.args)
	}
	tab := &table{name: "orders", key: []string{"id"}, byName: map[string]*column{"id": {Name: "id", Type: "int"}, "amount": {Name: "amount", Type: "decimal", Precision: 12, Scale: 4}}}
	cs, err := parseChanges(tab, rs)
	if err != nil || len(cs) != 1 || !cs[0].commit.Equal(commit) || cs[0].commit.UTC().Hour() != 15 || string(cs[0].after) != `{"id":1,"amount":1.5000}` {
		t.Fatalf("parsed %+v %v", cs, err)
	}
	rs, err = st.Chunk(ctx, chunkQuery{Schema: "dbo", Table: "orders", Cols: []string{"id", "amount"}, Key: []string{"id"}, After: []any{"1"}, Limit: 3})
	if err != nil || len(rs.Rows) != 1 || string(rs.Rows[0][1].([]byte)) != "2.0000" {
		t.Fatalf("chunk %+v %v", rs, err)
	}
	if _, err := st.query(ctx, "SELECT nothing known"); err == nil {
		t.Fatal("unknown query answered")
	}
}

// scripted is a database/sql driver answering queries by substring.
type scripted struct {
	mu      sync.Mutex
	answers []answer
	seen    []seenQuery
}

type answer struct {
	match string
	cols  []string
	rows  [][]driver.Value
}

type seenQuery struct {
	sql  string
	args []any
}

func (d *scripted) Connect(context.Context) (driver.Conn, error) { return &scriptedConn{d}, nil }
func (d *scripted) Driver() driver.Driver                        { return nil }

func (d *scripted) last() seenQuery {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seen[len(d.seen)-1]
}

type scriptedConn struct{ d *scripted }

func (c *scriptedConn) Prepare(string) (driver.Stmt, error) { return nil, errors.New("not supported") }
func (c *scriptedConn) Close() error                        { return nil }
func (c *scriptedConn) Begin() (driver.Tx, error)           { return nil, errors.New("not supported") }

func (c *scriptedConn) QueryContext(_ context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	sq := seenQuery{sql: q}
	for _, a := range args {
		sq.args = append(sq.args, a.Value)
	}
	c.d.seen = append(c.d.seen, sq)
	for _, a := range c.d.answers {
		if strings.Contains(q, a.match) {
			return &scriptedRows{cols: a.cols, rows: a.rows}, nil
		}
	}
	return nil, errors.New("mssql: unknown query")
}

type scriptedRows struct {
	cols []string
	rows [][]driver.Value
	i    int
}

func (r *scriptedRows) Columns() []string { return r.cols }
func (r *scriptedRows) Close() error      { return nil }
func (r *scriptedRows) Next(dst []driver.Value) error {
	if r.i >= len(r.rows) {
		return io.EOF
	}
	copy(dst, r.rows[r.i])
	r.i++
	return nil
}
