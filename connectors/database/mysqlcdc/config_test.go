package mysqlcdc

import (
	"context"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/spec"
)

func decode(src string) (*Config, []spec.Problem) {
	return spec.DecodeString[Config](src, "sources.mysql.config")
}

func TestRegistered(t *testing.T) {
	for _, name := range []string{"mysql-cdc", "mariadb-cdc"} {
		e, ok := catalog.Lookup(catalog.Source, name)
		if !ok {
			t.Fatalf("%s not registered", name)
		}
		if e.Name != "mysql-cdc" || e.Category != catalog.Database || e.Subcategory != "CDC" || len(e.Metrics) == 0 {
			t.Fatalf("meta %+v", e.Meta)
		}
	}
}

const validYAML = `
host: localhost
database: mydb
user: replication_user
password: s3cret-pw
server_id: 12345
tables: [orders, customers]
`

func TestConfigDefaults(t *testing.T) {
	c, ps := decode(validYAML)
	if len(ps) > 0 {
		t.Fatal(spec.Problems(ps))
	}
	if c.Port != 3306 || !c.UseGTID || c.HeartbeatIntervalSecs != 10 || c.BinlogPosition != 4 || c.snapshotMode() != "initial" || c.snapshotBatch() != 10000 {
		t.Fatalf("defaults: %+v", c)
	}
	if _, err := New(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrorsNameThePath(t *testing.T) {
	cases := []struct{ yaml, path, msg string }{
		{"port: 70000", "port", ""},
		{"server_id: 0", "server_id", ""},
		{"table_regex: '('", "table_regex", "regular expression"},
		{"snapshot: {mode: sometimes}", "snapshot.mode", "initial"},
		{"snapshot: {batch_size: 0}", "snapshot.batch_size", ""},
		{"tls: {mode: maybe}", "tls.mode", "verify-full"},
		{"tls: {mode: require, cert_path: /x}", "tls", "key_path"},
		{"gtid_set: 'zzz'", "gtid_set", "domain-server-seq"},
		{"binlog_position: 2", "binlog_position", ""},
		{"exclude_tables: ['[']", "exclude_tables[0]", "pattern"},
		{"heartbeat_interval_secs: 0", "heartbeat_interval_secs", ""},
	}
	for _, tc := range cases {
		src := validYAML + tc.yaml + "\n"
		if strings.HasPrefix(tc.yaml, "server_id") {
			src = strings.Replace(validYAML, "server_id: 12345\n", "", 1) + tc.yaml + "\n"
		}
		cfg, ps := decode(src)
		if len(ps) == 0 && cfg != nil {
			ps = cfg.Validate()
		}
		found := false
		for _, p := range ps {
			if strings.HasSuffix(p.Path, tc.path) && strings.Contains(p.Message, tc.msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("%q: no problem at %s mentioning %q in %v", tc.yaml, tc.path, tc.msg, ps)
		}
		if strings.Contains(spec.Problems(ps).Error(), "s3cret-pw") {
			t.Errorf("password leaked: %v", ps)
		}
	}
	_, ps := decode("host: h\n")
	msg := spec.Problems(ps).Error()
	for _, k := range []string{"database", "user", "password", "server_id"} {
		if !strings.Contains(msg, k) {
			t.Errorf("missing required %s not reported: %s", k, msg)
		}
	}
}

func TestFilter(t *testing.T) {
	f := newFilter(&Config{Database: "db", Tables: []string{"orders", "cust*"}, ExcludeTables: []string{"db.customers_old"}, TableRegex: "^[a-z_]+$",
		Snapshot: &Snapshot{ExcludeTables: []string{"orders"}}})
	for _, tc := range []struct {
		db, t     string
		cap, snap bool
	}{
		{"db", "orders", true, false}, {"db", "customers", true, true}, {"db", "customers_old", false, true},
		{"other", "orders", false, false}, {"db", "items", false, true}, {"db", "cust2", false, true},
	} {
		if got := f.captured(tc.db, tc.t); got != tc.cap {
			t.Errorf("captured(%s.%s) = %v", tc.db, tc.t, got)
		}
		if tc.cap {
			if got := f.snapshotted(tc.db, tc.t); got != tc.snap {
				t.Errorf("snapshotted(%s.%s) = %v", tc.db, tc.t, got)
			}
		}
	}
}

func TestCheckAndDiscover(t *testing.T) {
	c := testDB(t)
	tbl := uniqueTable(t, c, "disc")
	nopk := uniqueTable(t, c, "discnopk")
	mustExec(t, c, "CREATE TABLE "+tbl+" (a INT, b VARCHAR(5), c INT, PRIMARY KEY (b, a))", "CREATE TABLE "+nopk+" (x INT)")
	s := newSource(t, testConfig(tbl, nopk))
	if err := s.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	streams, err := s.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(streams) != 2 {
		t.Fatalf("streams %+v", streams)
	}
	for _, st := range streams {
		switch st.Name {
		case "test." + tbl:
			if strings.Join(st.PrimaryKey, ",") != "b,a" || len(st.Columns) != 3 || st.Note != "" {
				t.Errorf("%+v", st)
			}
		case "test." + nopk:
			if len(st.PrimaryKey) != 0 || st.Note == "" {
				t.Errorf("%+v", st)
			}
		default:
			t.Errorf("unexpected stream %s", st.Name)
		}
	}

	// A user without replication privileges is told what to grant.
	user := "cdc_" + strings.TrimPrefix(tbl, "disc_")
	mustExec(t, c, "CREATE USER '"+user+"'@'%' IDENTIFIED BY 'pw-secret-1'", "GRANT SELECT ON test.* TO '"+user+"'@'%'")
	t.Cleanup(func() { _ = c.exec("DROP USER '" + user + "'@'%'") })
	cfg := testConfig(tbl)
	cfg.User, cfg.Password = user, "pw-secret-1"
	err = newSource(t, cfg).Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "GRANT REPLICATION SLAVE") || !strings.Contains(err.Error(), "REPLICATION CLIENT") {
		t.Fatalf("Check without privileges: %v", err)
	}
	if strings.Contains(err.Error(), "pw-secret-1") {
		t.Fatal("password in error")
	}
	cfg.Password = "wrong-password-9"
	err = newSource(t, cfg).Check(context.Background())
	if err == nil || strings.Contains(err.Error(), "wrong-password-9") {
		t.Fatalf("bad password: %v", err)
	}
}

// TestTLSRequireAndPrefer: against a server without TLS (the local one),
// require fails with a message saying what to change; against one with
// TLS it connects. prefer connects either way.
func TestTLSRequireAndPrefer(t *testing.T) {
	c := testDB(t)
	res, err := c.query("SELECT @@have_ssl")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.TLS = &TLS{Mode: "require"}
	err = newSource(t, cfg).Check(context.Background())
	if serverTLS := string(res.Rows[0][0]) == "YES"; serverTLS && err != nil {
		t.Fatalf("require against a server with TLS: %v", err)
	} else if !serverTLS && (err == nil || !strings.Contains(err.Error(), "does not support TLS")) {
		t.Fatalf("require against a server without TLS: %v", err)
	}
	cfg.TLS = &TLS{Mode: "prefer"}
	if err := newSource(t, cfg).Check(context.Background()); err != nil {
		t.Fatalf("prefer: %v", err)
	}
}
