package sqlservercdc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/testenv"
)

// TestRealServer runs the scenarios of the fake's tests against a real
// SQL Server when MSSQL_DSN is set (sqlserver://user:password@host:port?database=name;
// the login must be able to enable CDC, i.e. sysadmin or db_owner, and
// SQL Server Agent must run so that the capture job fills the change
// tables). No SQL Server can run on the machines this project's CI uses,
// so this is the one integration test it cannot run: under
// RIVVEN_REQUIRE_SERVICES=1 it is skipped saying so, not failed.
//
// Scenarios: check and discover; snapshot and every type; a
// transaction across statements with its commit time; a restart in the
// middle of it; a snapshot reconciled with changes made while it runs;
// a table enabled for CDC while the source streams; a capture-instance
// switch after ALTER TABLE ADD; a position CDC cleanup removed, under
// initial and when_needed.
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
	base := Config{Host: u.Hostname(), Port: port, Database: u.Query().Get("database"), Username: u.User.Username(), Password: pw,
		Schema: "dbo", SnapshotMode: "initial", PollIntervalMS: 200, SnapshotCaptureWaitSecs: 60,
		Encrypt: u.Query().Get("encrypt") == "true", TrustServerCertificate: true, SnapshotChunkSize: 2, MaxBatchSize: 1000, ConnectTimeoutSecs: 30}
	if !base.Encrypt {
		base.TrustServerCertificate = false
	}
	conn, err := mssql.NewConnector(base.dsn())
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	ctx := context.Background()
	// exec runs a statement for the test t (of the goroutine calling);
	// hookExec runs one from the source's emitter, where a test may not
	// stop, and reports a failure.
	exec := func(t *testing.T, q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	hookExec := func(t *testing.T, q string, args ...any) {
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	// A capture job scans the log every few seconds (5 by default), and a
	// snapshot waits for it after every chunk.
	old := readGuard
	readGuard = 5 * time.Minute
	t.Cleanup(func() { readGuard = old })

	exec(t, `IF (SELECT is_cdc_enabled FROM sys.databases WHERE name = DB_NAME()) = 0 EXEC sys.sp_cdc_enable_db`)
	// table drops and creates a table (disabling its capture instances
	// first), inserts its rows and, unless enable is false, enables CDC
	// for it.
	table := func(t *testing.T, name, ddl, rows string, enable bool) {
		t.Helper()
		exec(t, fmt.Sprintf(`IF OBJECT_ID('dbo.%[1]s') IS NOT NULL BEGIN
  IF EXISTS (SELECT 1 FROM sys.tables WHERE name = '%[1]s' AND is_tracked_by_cdc = 1) EXEC sys.sp_cdc_disable_table @source_schema = N'dbo', @source_name = N'%[1]s', @capture_instance = N'all';
  DROP TABLE dbo.%[1]s END`, name))
		exec(t, fmt.Sprintf(`CREATE TABLE dbo.%s (%s)`, name, ddl))
		if rows != "" {
			exec(t, fmt.Sprintf(`INSERT INTO dbo.%s VALUES %s`, name, rows))
		}
		if enable {
			exec(t, `EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = @p1, @role_name = NULL`, name)
		}
	}
	source := func(mode string, tables ...string) *Source {
		cfg := base
		cfg.SnapshotMode = mode
		cfg.IncludeTables = tables
		return &Source{cfg: &cfg, now: time.Now, open: func(ctx context.Context) (store, error) { return openSQL(ctx, &cfg) }}
	}
	serverUTC := func(t *testing.T) time.Time {
		t.Helper()
		var now time.Time
		if err := db.QueryRowContext(ctx, "SELECT SYSUTCDATETIME()").Scan(&now); err != nil {
			t.Fatal(err)
		}
		return now
	}

	t.Run("snapshot types transaction restart", func(t *testing.T) {
		table(t, "rivven_cdc_orders", `id int PRIMARY KEY, amount decimal(12,4), note nvarchar(100)`, `(1, 1.5, N'one'), (2, 2.5, N'two'), (3, 3.5, N'three')`, true)
		table(t, "rivven_cdc_types", `id int PRIMARY KEY, d decimal(38,10), m money, dt2 datetime2(7), dto datetimeoffset(7),
  g uniqueidentifier, rv rowversion, vb varbinary(max), x xml, nv nvarchar(50)`, "", false)
		exec(t, `INSERT INTO dbo.rivven_cdc_types (id, d, m, dt2, dto, g, vb, x, nv) VALUES (1, 12345678901234567890123456.1234567890, 922337203685477.5807,
  '2026-03-04T05:06:07.1234567', '2026-03-04T10:36:07.0000001+05:30', CONVERT(uniqueidentifier, 0xff19966f868b11d0b42d00c04fc964ff),
  0xdeadbeef, N'<a b="1">x</a>', N'naïve ☃')`)
		exec(t, `EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'rivven_cdc_types', @role_name = NULL`)
		s := source("initial", "rivven_cdc_orders", "rivven_cdc_types")
		// One change per batch, so that a publish can fail inside the
		// transaction.
		s.cfg.MaxBatchSize = 1
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
			`"dto":"2026-03-04T10:36:07.0000001+05:30"`, `"g":"6F9619FF-8B86-D011-B42D-00C04FC964FF"`, `"vb":"3q2+7w=="`, `"nv":"naïve ☃"`, `"x":"\u003ca b=\"1\"\u003ex\u003c/a\u003e"`} {
			if !strings.Contains(typesRow, want) {
				t.Errorf("types row lacks %s: %s", want, typesRow)
			}
		}

		before := serverUTC(t)
		exec(t, `BEGIN TRAN; UPDATE dbo.rivven_cdc_orders SET amount = 10.01, note = N'changed' WHERE id = 1; DELETE FROM dbo.rivven_cdc_orders WHERE id = 2; INSERT INTO dbo.rivven_cdc_orders VALUES (4, NULL, N'four'); COMMIT`)
		after := serverUTC(t)
		// A publish failing after two of the transaction's three changes,
		// and a restart from the committed position (inside the
		// transaction).
		first := read(t, s, snap.committed, 0, 2)
		if first.err != nil || len(first.events) != 2 {
			t.Fatalf("%v, %d events", first.err, len(first.events))
		}
		rest := read(t, s, first.committed, 3-len(first.events), 0)
		evs := append(first.events, rest.events...)
		wantLines(t, summary(evs),
			`update dbo.rivven_cdc_orders {"id":1} {"after":{"amount":10.0100,"id":1,"note":"changed"},"before":{"amount":1.5000,"id":1,"note":"one"}}`,
			`delete dbo.rivven_cdc_orders {"id":2} {"amount":2.5000,"id":2,"note":"two"}`,
			`insert dbo.rivven_cdc_orders {"id":4} {"amount":null,"id":4,"note":"four"}`)
		// The commit time (tran_end_time, datetime: 1/300 s) lies between
		// the server's clock before and after the transaction.
		for _, e := range evs {
			ts := e.Source.CommitTS
			if ts == nil || ts.Before(before.Add(-10*time.Millisecond)) || ts.After(after.Add(10*time.Millisecond)) || !ts.Equal(*evs[0].Source.CommitTS) {
				t.Fatalf("commit_ts %v, want one time between %v and %v", ts, before, after)
			}
		}
	})

	t.Run("snapshot reconciled with changes during it", func(t *testing.T) {
		table(t, "rivven_cdc_recon", `id int PRIMARY KEY, v nvarchar(50)`, `(1, N'a'), (2, N'b'), (3, N'c'), (4, N'd'), (5, N'e'), (6, N'f')`, true)
		s := source("initial", "rivven_cdc_recon")
		r := readHooked(t, s, nil, 8, 0, once(hasEvent(events.SnapshotRead, "dbo.rivven_cdc_recon", `{"id":1}`), func() {
			hookExec(t, `BEGIN TRAN; UPDATE dbo.rivven_cdc_recon SET v = N'a2' WHERE id = 1; UPDATE dbo.rivven_cdc_recon SET v = N'd2' WHERE id = 4;
  DELETE FROM dbo.rivven_cdc_recon WHERE id = 5; INSERT INTO dbo.rivven_cdc_recon VALUES (7, N'g'); COMMIT`)
		}))
		if r.err != nil {
			t.Fatal(r.err)
		}
		wantLines(t, summary(r.events),
			`snapshot-read dbo.rivven_cdc_recon {"id":1} {"id":1,"v":"a"}`,
			`snapshot-read dbo.rivven_cdc_recon {"id":2} {"id":2,"v":"b"}`,
			`snapshot-read dbo.rivven_cdc_recon {"id":3} {"id":3,"v":"c"}`,
			`snapshot-read dbo.rivven_cdc_recon {"id":6} {"id":6,"v":"f"}`,
			`update dbo.rivven_cdc_recon {"id":1} {"after":{"id":1,"v":"a2"},"before":{"id":1,"v":"a"}}`,
			`update dbo.rivven_cdc_recon {"id":4} {"after":{"id":4,"v":"d2"},"before":{"id":4,"v":"d"}}`,
			`delete dbo.rivven_cdc_recon {"id":5} {"id":5,"v":"e"}`,
			`insert dbo.rivven_cdc_recon {"id":7} {"id":7,"v":"g"}`)
	})

	t.Run("table enabled while streaming", func(t *testing.T) {
		table(t, "rivven_cdc_early", `id int PRIMARY KEY, v nvarchar(50)`, `(1, N'early')`, true)
		table(t, "rivven_cdc_late", `id int PRIMARY KEY, v nvarchar(50)`, `(1, N'x'), (2, N'y'), (3, N'z')`, false)
		s := source("initial", "rivven_cdc_early", "rivven_cdc_late")
		// After the first table's snapshot row: enable the second and
		// insert into it while the source finds and snapshots it; after
		// its snapshot's last pre-CDC row, update a row it read. A row
		// arriving twice would come before that update (log order).
		enable := once(func([]*events.Event) bool { return true }, func() {
			hookExec(t, `EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'rivven_cdc_late', @role_name = NULL`)
			hookExec(t, `INSERT INTO dbo.rivven_cdc_late VALUES (4, N'w')`)
		})
		update := once(hasEvent(events.SnapshotRead, "dbo.rivven_cdc_late", `{"id":3}`), func() {
			hookExec(t, `UPDATE dbo.rivven_cdc_late SET v = N'x2' WHERE id = 1`)
		})
		evs := readUntilHooked(t, s, nil, func(b []*events.Event) {
			enable(b)
			update(b)
		}, func(all []*events.Event) bool {
			return hasEvent(events.Update, "dbo.rivven_cdc_late", `{"id":1}`)(all)
		})
		var late []string
		for _, e := range evs {
			if e.Stream == "dbo.rivven_cdc_late" {
				late = append(late, fmt.Sprintf("%s %s", e.Type, e.Key))
			}
		}
		got := strings.Join(late, "\n")
		// Row 4 is a snapshot row or its insert, depending on whether the
		// capture job had passed it when the snapshot began.
		want1 := "schema \nsnapshot-read {\"id\":1}\nsnapshot-read {\"id\":2}\nsnapshot-read {\"id\":3}\nsnapshot-read {\"id\":4}\nupdate {\"id\":1}"
		want2 := "schema \nsnapshot-read {\"id\":1}\nsnapshot-read {\"id\":2}\nsnapshot-read {\"id\":3}\ninsert {\"id\":4}\nupdate {\"id\":1}"
		if got != want1 && got != want2 {
			t.Fatalf("the late table's events:\n%s", got)
		}
	})

	t.Run("capture instance switch", func(t *testing.T) {
		table(t, "rivven_cdc_sw", `id int PRIMARY KEY, v nvarchar(50)`, `(1, N'one')`, true)
		s := source("initial", "rivven_cdc_sw")
		r := read(t, s, nil, 1, 0)
		if r.err != nil {
			t.Fatal(r.err)
		}
		exec(t, `ALTER TABLE dbo.rivven_cdc_sw ADD status varchar(20) NULL`)
		exec(t, `EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'rivven_cdc_sw', @role_name = NULL, @capture_instance = N'dbo_rivven_cdc_sw_v2'`)
		exec(t, `INSERT INTO dbo.rivven_cdc_sw VALUES (2, N'two', 'new')`)
		r2 := read(t, s, r.committed, 2, 0)
		if r2.err != nil {
			t.Fatal(r2.err)
		}
		got := summary(r2.events)
		if len(got) != 2 || !strings.HasPrefix(got[0], "schema dbo.rivven_cdc_sw") || got[1] != `insert dbo.rivven_cdc_sw {"id":2} {"id":2,"status":"new","v":"two"}` {
			t.Fatalf("after the switch:\n%s", strings.Join(got, "\n"))
		}
		exec(t, `EXEC sys.sp_cdc_disable_table @source_schema = N'dbo', @source_name = N'rivven_cdc_sw', @capture_instance = N'dbo_rivven_cdc_sw'`)
		exec(t, `DELETE FROM dbo.rivven_cdc_sw WHERE id = 1`)
		r3 := read(t, s, r2.committed, 1, 0)
		if r3.err != nil {
			t.Fatal(r3.err)
		}
		wantLines(t, summary(r3.events), `delete dbo.rivven_cdc_sw {"id":1} {"id":1,"status":null,"v":"one"}`)
	})

	t.Run("position removed by cleanup", func(t *testing.T) {
		table(t, "rivven_cdc_lost", `id int PRIMARY KEY, v nvarchar(50)`, `(1, N'one')`, true)
		r := read(t, source("initial", "rivven_cdc_lost"), nil, 1, 0)
		if r.err != nil {
			t.Fatal(r.err)
		}
		exec(t, `UPDATE dbo.rivven_cdc_lost SET v = N'gone' WHERE id = 1`)
		exec(t, `INSERT INTO dbo.rivven_cdc_lost VALUES (2, N'two')`)
		// Wait for the capture job, then clean up below the newest
		// change: the update is gone from the change table.
		deadline := time.Now().Add(2 * time.Minute)
		for {
			var n int
			if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM cdc.dbo_rivven_cdc_lost_CT`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n >= 3 { // the update's two images and the insert
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the capture job did not capture the changes in 2 minutes (is SQL Server Agent running?)")
			}
			time.Sleep(time.Second)
		}
		exec(t, `DECLARE @lw binary(10) = (SELECT MAX(__$start_lsn) FROM cdc.dbo_rivven_cdc_lost_CT);
EXEC sys.sp_cdc_cleanup_change_table @capture_instance = N'dbo_rivven_cdc_lost', @low_water_mark = @lw, @threshold = 5000`)
		lost := read(t, source("initial", "rivven_cdc_lost"), r.committed, 0, 0)
		if !errors.Is(lost.err, connector.ErrFatal) || !strings.Contains(lost.err.Error(), "CDC cleanup already removed changes") {
			t.Fatalf("initial: %v", lost.err)
		}
		again := read(t, source("when_needed", "rivven_cdc_lost"), r.committed, 2, 0)
		if again.err != nil {
			t.Fatal(again.err)
		}
		wantLines(t, summary(again.events),
			`snapshot-read dbo.rivven_cdc_lost {"id":1} {"id":1,"v":"gone"}`,
			`snapshot-read dbo.rivven_cdc_lost {"id":2} {"id":2,"v":"two"}`)
		if !strings.Contains(again.logs, "taking a new snapshot of every table") {
			t.Fatalf("logs:\n%s", again.logs)
		}
	})
}
