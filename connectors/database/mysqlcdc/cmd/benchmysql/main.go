// Command benchmysql measures the mysql-cdc source's binlog throughput
// against mariadb-binlog reading the same binlog range from the same
// server in the same run.
//
// It loads -rows rows into a fresh table (1000 rows per INSERT, each its
// own transaction), notes the binlog range the load produced, then:
//
//  1. streams that range with mysql-cdc (snapshot.mode never, starting at
//     the range's first byte) into the drop sink, until every row arrived;
//  2. runs mariadb-binlog --read-from-remote-server --raw over the range:
//     the protocol/network ceiling (bytes copied to a file, no decoding);
//  3. runs mariadb-binlog --read-from-remote-server --verbose over the
//     range into /dev/null: the same fetching plus decoding every row into
//     pseudo-SQL text, the closest counterpart of what mysql-cdc does
//     (decoding every row into a JSON event).
//
// It prints rows/s for each and mysql-cdc's ratio to both.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rivven/rivven-connect/connectors/database/mysqlcdc"
	"github.com/rivven/rivven-connect/connectors/utility/drop"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
)

func main() {
	rows := flag.Int("rows", 1000000, "rows to load and stream")
	host := flag.String("host", "127.0.0.1", "server host")
	port := flag.Int("port", 3306, "server port")
	user := flag.String("user", "root", "user (needs REPLICATION SLAVE and CREATE/INSERT/DROP on -db)")
	password := flag.String("password", os.Getenv("MYSQL_PASSWORD"), "password (default $MYSQL_PASSWORD)")
	db := flag.String("db", "test", "database for the bench table")
	keep := flag.Bool("keep", false, "keep the bench table")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the mysql-cdc run to this file")
	memprofile := flag.String("memprofile", "", "write an allocation profile (go tool pprof -sample_index=alloc_space) to this file after the mysql-cdc run")
	flag.Parse()
	profile, memProfile = *cpuprofile, *memprofile
	if err := run(*rows, *host, *port, *user, *password, *db, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "benchmysql:", err)
		os.Exit(1)
	}
}

var profile, memProfile string

type client struct {
	host, user, password, db string
	port                     int
}

func (c client) args(extra ...string) []string {
	a := []string{"-h", c.host, "-P", strconv.Itoa(c.port), "-u", c.user}
	return append(a, extra...)
}

func (c client) cmd(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	// The password goes through the environment, not the command line.
	cmd.Env = append(os.Environ(), "MYSQL_PWD="+c.password)
	cmd.Stderr = os.Stderr
	return cmd
}

func (c client) sql(q string) (string, error) {
	cmd := c.cmd("mariadb", c.args("-N", "-B", c.db, "-e", q)...)
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}

func (c client) masterStatus() (string, uint64, error) {
	out, err := c.sql("SHOW MASTER STATUS")
	if err != nil {
		return "", 0, err
	}
	f := strings.Fields(out)
	if len(f) < 2 {
		return "", 0, fmt.Errorf("SHOW MASTER STATUS: %q (binary logging off?)", out)
	}
	pos, err := strconv.ParseUint(f[1], 10, 64)
	return f[0], pos, err
}

func (c client) binlogFiles(from, to string) ([]string, error) {
	out, err := c.sql("SHOW BINARY LOGS")
	if err != nil {
		return nil, err
	}
	var files []string
	in := false
	for _, line := range strings.Split(out, "\n") {
		name := strings.Fields(line)[0]
		if name == from {
			in = true
		}
		if in {
			files = append(files, name)
		}
		if name == to {
			break
		}
	}
	return files, nil
}

func run(rows int, host string, port int, user, password, db string, keep bool) error {
	c := client{host: host, port: port, user: user, password: password, db: db}
	table := fmt.Sprintf("bench_%d", time.Now().Unix())
	if _, err := c.sql("CREATE TABLE " + table + " (id BIGINT PRIMARY KEY, customer INT UNSIGNED NOT NULL, status VARCHAR(16) NOT NULL, amount DECIMAL(12,2) NOT NULL, note VARCHAR(64), created DATETIME(6) NOT NULL)"); err != nil {
		return err
	}
	if !keep {
		defer func() { _, _ = c.sql("DROP TABLE IF EXISTS " + table) }()
	}
	startFile, startPos, err := c.masterStatus()
	if err != nil {
		return err
	}
	fmt.Printf("loading %d rows into %s.%s ...\n", rows, db, table)
	t0 := time.Now()
	if err := load(c, table, rows); err != nil {
		return err
	}
	endFile, endPos, err := c.masterStatus()
	if err != nil {
		return err
	}
	fmt.Printf("loaded in %s; binlog range %s:%d .. %s:%d\n", time.Since(t0).Round(time.Millisecond), startFile, startPos, endFile, endPos)

	cdc, cdcCPU, err := benchCDC(c, table, rows, startFile, uint32(startPos))
	if err != nil {
		return fmt.Errorf("mysql-cdc: %w", err)
	}
	files, err := c.binlogFiles(startFile, endFile)
	if err != nil {
		return err
	}
	raw, rawCPU, err := benchBinlog(c, files, startPos, endPos, true)
	if err != nil {
		return fmt.Errorf("mariadb-binlog --raw: %w", err)
	}
	verbose, verboseCPU, err := benchBinlog(c, files, startPos, endPos, false)
	if err != nil {
		return fmt.Errorf("mariadb-binlog --verbose: %w", err)
	}
	rate := func(d time.Duration) float64 { return float64(rows) / d.Seconds() }
	perRow := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(rows) / 1000 }
	fmt.Printf("%-40s %12s %10s %14s\n", "", "rows/s", "wall", "CPU µs/row")
	line := func(name string, wall, cpu time.Duration) {
		fmt.Printf("%-40s %12.0f %10s %14.2f\n", name, rate(wall), wall.Round(time.Millisecond), perRow(cpu))
	}
	line("mysql-cdc -> drop", cdc, cdcCPU)
	line("mariadb-binlog --raw (network ceiling)", raw, rawCPU)
	line("mariadb-binlog --verbose > /dev/null", verbose, verboseCPU)
	fmt.Printf("ratio mysql-cdc / raw (rows/s):     %.2f\n", raw.Seconds()/cdc.Seconds())
	fmt.Printf("ratio mysql-cdc / verbose (rows/s): %.2f\n", verbose.Seconds()/cdc.Seconds())
	return nil
}

// load inserts rows through the mariadb client, 1000 rows per statement.
func load(c client, table string, rows int) error {
	cmd := c.cmd("mariadb", c.args(c.db)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	statuses := []string{"new", "paid", "shipped", "cancelled"}
	var buf bytes.Buffer
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < rows; {
		buf.Reset()
		buf.WriteString("INSERT INTO " + table + " VALUES ")
		for j := 0; j < 1000 && i < rows; j, i = j+1, i+1 {
			if j > 0 {
				buf.WriteByte(',')
			}
			ts := base.Add(time.Duration(i) * time.Second).Format("2006-01-02 15:04:05.000000")
			fmt.Fprintf(&buf, "(%d,%d,'%s',%d.%02d,'note %d','%s')", i+1, rng.IntN(100000), statuses[rng.IntN(4)], rng.IntN(100000), rng.IntN(100), i, ts)
		}
		buf.WriteString(";\n")
		if _, err := stdin.Write(buf.Bytes()); err != nil {
			return err
		}
	}
	if err := stdin.Close(); err != nil {
		return err
	}
	return cmd.Wait()
}

// counter hands batches to the drop sink and signals when all rows came.
type counter struct {
	sink  connector.Sink
	n     atomic.Int64
	want  int64
	done  chan struct{}
	first atomic.Int64 // unix nanos of the first batch
}

func (c *counter) Emit(ctx context.Context, batch []*events.Event) error {
	if err := c.sink.Write(ctx, batch); err != nil {
		return err
	}
	if c.first.Load() == 0 {
		c.first.Store(time.Now().UnixNano())
	}
	if c.n.Add(int64(len(batch))) >= c.want {
		select {
		case <-c.done:
		default:
			close(c.done)
		}
	}
	return nil
}

func benchCDC(c client, table string, rows int, file string, pos uint32) (time.Duration, time.Duration, error) {
	cfg := &mysqlcdc.Config{
		Host: c.host, Port: c.port, Database: c.db, User: c.user, Password: c.password,
		ServerID: uint32(4000000 + rand.IntN(100000)), Tables: []string{table},
		BinlogFilename: file, BinlogPosition: pos, UseGTID: false,
		Snapshot:              &mysqlcdc.Snapshot{Mode: "never", BatchSize: 10000},
		TLS:                   &mysqlcdc.TLS{Mode: "disable"},
		HeartbeatIntervalSecs: 10, ConnectTimeoutSecs: 30, MaxBatchSize: 1000,
		RetryInitialMS: 200, RetryMaxMS: 5000,
	}
	src, err := mysqlcdc.New(context.Background(), cfg)
	if err != nil {
		return 0, 0, err
	}
	sink, _ := drop.New(context.Background(), &drop.Config{})
	em := &counter{sink: sink, want: int64(rows), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return 0, 0, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, 0, err
		}
		defer pprof.StopCPUProfile()
	}
	cpu0 := processCPU()
	start := time.Now()
	go func() { errc <- src.Read(ctx, nil, em) }()
	select {
	case <-em.done:
	case err := <-errc:
		return 0, 0, fmt.Errorf("source returned early after %d events: %v", em.n.Load(), err)
	}
	d := time.Since(start)
	cpu := processCPU() - cpu0
	if memProfile != "" {
		f, err := os.Create(memProfile)
		if err != nil {
			return 0, 0, err
		}
		defer f.Close()
		// The allocs profile covers the whole process since its start:
		// besides the mysql-cdc run it holds the load's statement
		// building (main.load), which is easy to tell apart.
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return 0, 0, err
		}
	}
	fmt.Printf("mysql-cdc: first batch after %s (connect, session setup, dump start)\n", time.Unix(0, em.first.Load()).Sub(start).Round(time.Millisecond))
	cancel()
	<-errc
	return d, cpu, nil
}

// processCPU is the user+system CPU time this process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchBinlog(c client, files []string, startPos, endPos uint64, raw bool) (time.Duration, time.Duration, error) {
	args := c.args("--read-from-remote-server", "--start-position="+strconv.FormatUint(startPos, 10), "--stop-position="+strconv.FormatUint(endPos, 10))
	dir := ""
	if raw {
		var err error
		if dir, err = os.MkdirTemp("", "benchmysql"); err != nil {
			return 0, 0, err
		}
		defer os.RemoveAll(dir)
		args = append(args, "--raw", "--result-file="+dir+"/")
	} else {
		args = append(args, "--verbose")
	}
	args = append(args, files...)
	cmd := c.cmd("mariadb-binlog", args...)
	cmd.Stdout = io.Discard
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, err
	}
	return time.Since(start), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}
