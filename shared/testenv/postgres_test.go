package testenv

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPrivatePostgres: the cluster answers on its own port with the
// defaults and the test's settings (1 MB WAL segments, logical
// decoding, a slot WAL limit), runs as a user PostgreSQL accepts, and is
// gone — process and directory — once its test has ended.
func TestPrivatePostgres(t *testing.T) {
	var srv *privatePostgres
	t.Run("server", func(t *testing.T) {
		srv = startPrivatePostgres(t, []string{"max_slot_wal_keep_size=4MB", "application_name=rivven_private"})
		if srv == nil {
			return
		}
		if srv.port == 5432 || !strings.Contains(srv.dsn, "127.0.0.1:"+strconv.Itoa(srv.port)+"/") {
			t.Fatalf("dsn %s, port %d", srv.dsn, srv.port)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, srv.dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		for name, want := range map[string]string{
			"wal_level":              "logical",
			"wal_segment_size":       "1MB",
			"max_slot_wal_keep_size": "4MB",
			"fsync":                  "off",
			"application_name":       "rivven_private", // a test's setting after the defaults
			"port":                   strconv.Itoa(srv.port),
		} {
			var got string
			if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
		// A logical slot can be made: what the tests use it for.
		if _, err := conn.Exec(ctx, "SELECT pg_create_logical_replication_slot('probe', 'pgoutput')"); err != nil {
			t.Fatal(err)
		}
		var superuser bool
		if err := conn.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&superuser); err != nil || !superuser {
			t.Fatalf("superuser %v: %v", superuser, err)
		}
	})
	if srv == nil {
		return
	}
	if _, err := os.Stat(srv.dir); !os.IsNotExist(err) {
		t.Errorf("directory %s left behind: %v", srv.dir, err)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(srv.port), time.Second); err == nil {
		c.Close()
		t.Errorf("port %d still answers after the test ended", srv.port)
	}
	if err := syscall.Kill(srv.pid, 0); err == nil {
		t.Errorf("postmaster %d still runs after the test ended", srv.pid)
	}
}

// Without the server programs the test skips, or fails under CI.
func TestPrivatePostgresMissing(t *testing.T) {
	t.Setenv(EnvPostgresBin, t.TempDir())
	for _, tc := range []struct {
		env       string
		wantFatal bool
	}{{"", false}, {"1", true}} {
		t.Setenv(EnvRequire, tc.env)
		r := &recorder{TB: t}
		if dsn := PrivatePostgres(r, "wal_level=logical"); dsn != "" {
			t.Fatalf("env=%q: dsn %q without a server", tc.env, dsn)
		}
		if (r.fatal != "") != tc.wantFatal || (r.skip != "") == tc.wantFatal || !strings.Contains(r.fatal+r.skip, "initdb") {
			t.Errorf("env=%q: fatal=%q skip=%q", tc.env, r.fatal, r.skip)
		}
	}
}
