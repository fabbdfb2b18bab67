package sqlservercdc

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/rivven/rivven-connect/shared/testenv"
)

// TestRealServer runs the scenarios against a real SQL Server when
// MSSQL_DSN is set (sqlserver://user:password@host:port?database=name;
// the login must be able to enable CDC, i.e. sysadmin or db_owner, and
// SQL Server Agent must run so that the capture job fills the change
// tables). No SQL Server can run on the machines this project's CI uses,
// so this is the one integration test it cannot run: under
// RIVVEN_REQUIRE_SERVICES=1 it is skipped saying so, not failed.
func TestRealServer(t *testing.T) {
	dsn := os.Getenv("MSSQL_DSN")
	if dsn == "" {
		if testenv.Required() {
			t.Skip("MSSQL_DSN is not set: no SQL Server (with SQL Server Agent, which CDC needs) runs on the machines this CI uses, so the real-server scenarios are skipped even under RIVVEN_REQUIRE_SERVICES=1; set MSSQL_DSN to run them")
		}
		t.Skip("MSSQL_DSN is not set (sqlserver://user:password@host:1433?database=name, a login that can enable CDC, SQL Server Agent running)")
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("MSSQL_DSN: %v", err)
	}
	pw, _ := u.User.Password()
	port, _ := strconv.Atoi(u.Port())
	if port == 0 {
		port = 1433
	}
	cfg := &Config{Host: u.Hostname(), Port: port, Database: u.Query().Get("database"), Username: u.User.Username(), Password: pw,
		Schema: "dbo", IncludeTables: []string{"rivven_cdc_*"}, SnapshotMode: "initial", PollIntervalMS: 200,
		Encrypt: u.Query().Get("encrypt") == "true", TrustServerCertificate: true, SnapshotChunkSize: 2, MaxBatchSize: 1000, ConnectTimeoutSecs: 30}
	if !cfg.Encrypt {
		cfg.TrustServerCertificate = false
	}
	conn, err := mssql.NewConnector(cfg.dsn())
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	ctx := context.Background()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`IF (SELECT is_cdc_enabled FROM sys.databases WHERE name = DB_NAME()) = 0 EXEC sys.sp_cdc_enable_db`)
	for _, tname := range []string{"rivven_cdc_types", "rivven_cdc_orders"} {
		exec(fmt.Sprintf(`IF OBJECT_ID('dbo.%[1]s') IS NOT NULL BEGIN
  IF EXISTS (SELECT 1 FROM sys.tables WHERE name = '%[1]s' AND is_tracked_by_cdc = 1) EXEC sys.sp_cdc_disable_table @source_schema = N'dbo', @source_name = N'%[1]s', @capture_instance = N'all';
  DROP TABLE dbo.%[1]s END`, tname))
	}
	exec(`CREATE TABLE dbo.rivven_cdc_orders (id int PRIMARY KEY, amount decimal(12,4), note nvarchar(100))`)
	exec(`CREATE TABLE dbo.rivven_cdc_types (id int PRIMARY KEY, d decimal(38,10), m money, dt2 datetime2(7), dto datetimeoffset(7),
  g uniqueidentifier, rv rowversion, vb varbinary(max), x xml, nv nvarchar(50))`)
	exec(`INSERT INTO dbo.rivven_cdc_orders VALUES (1, 1.5, N'one'), (2, 2.5, N'two'), (3, 3.5, N'three')`)
	exec(`INSERT INTO dbo.rivven_cdc_types (id, d, m, dt2, dto, g, vb, x, nv) VALUES (1, 12345678901234567890123456.1234567890, 922337203685477.5807,
  '2026-03-04T05:06:07.1234567', '2026-03-04T10:36:07.0000001+05:30', CONVERT(uniqueidentifier, 0xff19966f868b11d0b42d00c04fc964ff),
  0xdeadbeef, N'<a b="1">x</a>', N'naïve ☃')`)
	for _, tname := range []string{"rivven_cdc_orders", "rivven_cdc_types"} {
		exec(`EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = @p1, @role_name = NULL`, tname)
	}

	s := &Source{cfg: cfg, now: time.Now, open: func(ctx context.Context) (store, error) { return openSQL(ctx, cfg) }}
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
	streams, err := s.Discover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, st := range streams {
		if st.Name == "rivven_cdc_orders" {
			found = st.Note == "" && len(st.PrimaryKey) == 1
		}
	}
	if !found {
		t.Fatalf("discover: %+v", streams)
	}

	snap := read(t, s, nil, 4, 0)
	if snap.err != nil {
		t.Fatal(snap.err)
	}
	var typesRow string
	for _, e := range snap.events {
		if e.Stream == "dbo.rivven_cdc_types" {
			b, _ := e.Data.JSON()
			typesRow = string(b)
		}
	}
	for _, want := range []string{`"d":12345678901234567890123456.1234567890`, `"m":922337203685477.5807`, `"dt2":"2026-03-04T05:06:07.1234567"`,
		`"dto":"2026-03-04T10:36:07.0000001+05:30"`, `"g":"6F9619FF-8B86-D011-B42D-00C04FC964FF"`, `"vb":"3q2+7w=="`, `"nv":"naïve ☃"`} {
		if !strings.Contains(typesRow, want) {
			t.Errorf("types row lacks %s: %s", want, typesRow)
		}
	}

	exec(`BEGIN TRAN; UPDATE dbo.rivven_cdc_orders SET amount = 10.01, note = N'changed' WHERE id = 1; DELETE FROM dbo.rivven_cdc_orders WHERE id = 2; INSERT INTO dbo.rivven_cdc_orders VALUES (4, NULL, N'four'); COMMIT`)
	// The capture job picks the transaction up from the log within a few
	// seconds; read returns once the three changes arrived.
	first := read(t, s, snap.committed, 0, 2)
	if first.err != nil {
		t.Fatal(first.err)
	}
	rest := read(t, s, first.committed, 3-len(first.events), 0)
	got := summary(append(first.events, rest.events...))
	want := []string{
		`update dbo.rivven_cdc_orders {"id":1} {"after":{"amount":10.0100,"id":1,"note":"changed"},"before":{"amount":1.5000,"id":1,"note":"one"}}`,
		`delete dbo.rivven_cdc_orders {"id":2} {"amount":2.5000,"id":2,"note":"two"}`,
		`insert dbo.rivven_cdc_orders {"id":4} {"amount":null,"id":4,"note":"four"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("stream:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
