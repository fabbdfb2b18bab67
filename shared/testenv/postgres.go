package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EnvPostgresBin names the directory of the PostgreSQL server programs
// (initdb, postgres) PrivatePostgres runs; by default the newest
// /usr/lib/postgresql/<version>/bin, where Debian and Ubuntu put them.
const EnvPostgresBin = "RIVVEN_PG_BINDIR"

// privatePostgresDefaults are the settings of every private cluster,
// before the test's own. Durability is off (the cluster is thrown away),
// logical decoding is on, and the WAL limits are small so that a test
// can go past them by writing a few megabytes.
var privatePostgresDefaults = []string{
	"listen_addresses=127.0.0.1",
	"wal_level=logical",
	"max_replication_slots=16",
	"max_wal_senders=16",
	"max_connections=40",
	"shared_buffers=16MB",
	"fsync=off",
	"synchronous_commit=off",
	"full_page_writes=off",
	"min_wal_size=2MB",
	"max_wal_size=16MB",
	"log_min_messages=warning",
}

// PrivatePostgres starts a throwaway PostgreSQL cluster for the test and
// returns a DSN for its superuser postgres on database postgres (trust
// authentication, TCP on a free port of 127.0.0.1, no TLS). It is for
// tests that need a server-wide setting the shared server must not get
// (max_slot_wal_keep_size would invalidate other tests' slots):
// settings are name=value pairs given to the server on its command line
// (postgres -c) after the defaults (wal_level=logical, fsync=off,
// max_wal_size=16MB, ...). WAL segments are 1 MB (initdb
// --wal-segsize=1), so limits counted in segments are reached after
// little writing. PostgreSQL refuses to run as root: as root the cluster
// runs as the postgres OS user. The server is stopped (only the process
// started here, by its PID) and its directory removed when the test
// ends; on a failed test its log is logged first. Without the server
// programs the test skips, or fails under RIVVEN_REQUIRE_SERVICES=1.
func PrivatePostgres(t testing.TB, settings ...string) string {
	t.Helper()
	srv := startPrivatePostgres(t, settings)
	if srv == nil {
		return ""
	}
	return srv.dsn
}

type privatePostgres struct {
	dsn    string
	port   int
	dir    string
	pid    int
	exited chan error // the postmaster's Wait result
}

// postgresBinDir finds initdb and postgres: EnvPostgresBin, else the
// newest /usr/lib/postgresql/*/bin that has both.
func postgresBinDir() (string, error) {
	if dir := os.Getenv(EnvPostgresBin); dir != "" {
		return dir, checkPostgresBin(dir)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, dir := range dirs {
		if checkPostgresBin(dir) == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("no /usr/lib/postgresql/<version>/bin with initdb and postgres (install the postgresql server package, or set %s)", EnvPostgresBin)
}

func pgVersion(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func checkPostgresBin(dir string) error {
	for _, p := range []string{"initdb", "postgres"} {
		if fi, err := os.Stat(filepath.Join(dir, p)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%s has no %s program", dir, p)
		}
	}
	return nil
}

// runAs is the credential the cluster runs with: the postgres OS user
// when this process is root (PostgreSQL refuses root), else nil (this
// process's own user).
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and PostgreSQL refuses root: no postgres OS user to run it as: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func startPrivatePostgres(t testing.TB, settings []string) *privatePostgres {
	t.Helper()
	bin, err := postgresBinDir()
	if err != nil {
		Unavailable(t, "private PostgreSQL: %v", err)
		return nil
	}
	cred, err := runAs()
	if err != nil {
		Unavailable(t, "private PostgreSQL: %v", err)
		return nil
	}
	for _, s := range settings {
		if !strings.Contains(s, "=") {
			t.Fatalf("private PostgreSQL: setting %q is not name=value", s)
			return nil
		}
	}
	dir, err := os.MkdirTemp("", "rivven-pg-")
	if err != nil {
		t.Fatalf("private PostgreSQL: %v", err)
		return nil
	}
	srv := &privatePostgres{dir: dir}
	t.Cleanup(func() { srv.stop(t) })
	data := filepath.Join(dir, "data")
	// The server's user must reach its data directory inside ours.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("private PostgreSQL: %v", err)
		return nil
	}
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatalf("private PostgreSQL: %v", err)
		return nil
	}
	if cred != nil {
		if err := os.Chown(data, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatalf("private PostgreSQL: %v", err)
			return nil
		}
	}
	command := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = data // a directory the server's user can enter
		cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		return cmd
	}
	initdb := command("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync", "--wal-segsize=1")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("private PostgreSQL: initdb: %v\n%s", err, out)
		return nil
	}
	// A free port may be taken by someone else before the server binds
	// it: then try another.
	for attempt := 1; ; attempt++ {
		err := srv.start(command, data, settings)
		if err == nil {
			break
		}
		if attempt < 3 && strings.Contains(srv.log(), "could not bind") {
			continue
		}
		t.Fatalf("private PostgreSQL: %v\nserver log:\n%s", err, srv.log())
		return nil
	}
	srv.dsn = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", srv.port)
	return srv
}

// start runs the postmaster on a free port and waits until it accepts
// connections.
func (srv *privatePostgres) start(command func(string, ...string) *exec.Cmd, data string, settings []string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv.port = l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	logf, err := os.Create(filepath.Join(srv.dir, "server.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{"-D", data, "-c", "port=" + strconv.Itoa(srv.port), "-c", "unix_socket_directories=" + data}
	for _, s := range append(append([]string(nil), privatePostgresDefaults...), settings...) {
		args = append(args, "-c", s)
	}
	cmd := command("postgres", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	srv.pid = cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	srv.exited = exited
	// The postmaster writes "ready" into postmaster.pid once it accepts
	// connections (what pg_ctl -w waits for). Generous: the machine may
	// be loaded.
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case err := <-exited:
			srv.pid, srv.exited = 0, nil
			return fmt.Errorf("postgres exited while starting: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if b, err := os.ReadFile(filepath.Join(data, "postmaster.pid")); err == nil {
			if lines := strings.Split(string(b), "\n"); len(lines) > 7 && strings.TrimSpace(lines[7]) == "ready" {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres (pid %d) not ready after 90s", srv.pid)
		}
	}
	return nil
}

func (srv *privatePostgres) log() string {
	b, _ := os.ReadFile(filepath.Join(srv.dir, "server.log"))
	return string(b)
}

// stop ends the postmaster this helper started (immediate shutdown:
// nothing of the cluster is kept) and removes its directory.
func (srv *privatePostgres) stop(t testing.TB) {
	if t.Failed() {
		if l := srv.log(); l != "" {
			t.Logf("private PostgreSQL server log:\n%s", l)
		}
	}
	if srv.pid != 0 && srv.exited != nil {
		if p, err := os.FindProcess(srv.pid); err == nil {
			_ = p.Signal(syscall.SIGQUIT)
			select {
			case <-srv.exited:
			case <-time.After(30 * time.Second):
				_ = p.Signal(syscall.SIGKILL)
				<-srv.exited
			}
		}
	}
	if err := os.RemoveAll(srv.dir); err != nil {
		t.Errorf("private PostgreSQL: remove %s: %v", srv.dir, err)
	}
}
