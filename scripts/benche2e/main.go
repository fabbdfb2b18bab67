// Command benche2e measures the paths users run, through the built CLI,
// and prints µs of CPU per event (user + system of the child processes,
// from getrusage), events/s over the wall time and each child's peak RSS,
// then the median of the runs and the load average, since the machine is
// shared. `go tool task bench:e2e` builds the CLI and runs every mode:
//
//   - datagen: `rivven-connect local` on samples/bench/datagen-transforms.yaml
//     (datagen orders → three transforms → stdout jsonl), stdout to /dev/null;
//   - cdc: rows loaded into PostgreSQL in one transaction, then decoded from
//     the WAL by `rivven-connect local` (postgres-cdc → drop, snapshot never)
//     and by pg_recvlogical (pgoutput, same protocol) on slots created
//     before the load, so both read the same WAL;
//   - redis: `run source` (datagen) and `run sink` (drop) at the same time
//     on a Redis Streams topic of the local Redis, with the Redis commands
//     the run cost;
//   - redis-cdc: the same with postgres-cdc as the source, on rows loaded
//     in one transaction as in mode cdc.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// result is one measured process: its CPU and peak RSS, and the events it
// handled over its wall time.
type result struct {
	events int
	cpu    time.Duration
	wall   time.Duration
	rssMB  float64
	// anonMB is the most anonymous memory (heap, stacks, runtime) seen
	// while the process ran, polled: peak RSS also counts the pages of
	// the binary it maps, which depend on how the page cache holds the
	// file (0: not polled).
	anonMB float64
}

func (r result) cpuPerEvent() float64 { return float64(r.cpu.Nanoseconds()) / 1e3 / float64(r.events) }
func (r result) perSec() float64      { return float64(r.events) / r.wall.Seconds() }

func (r result) String() string {
	return fmt.Sprintf("%6.2f µs CPU/event  %9.0f events/s  peak RSS %5.0f MB%s", r.cpuPerEvent(), r.perSec(), r.rssMB, anon(r.anonMB))
}

func anon(mb float64) string {
	if mb == 0 {
		return ""
	}
	return fmt.Sprintf(" (anonymous %.0f MB)", mb)
}

// median is the median of each figure of rs on its own.
func median(rs []result) string {
	med := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return fmt.Sprintf("%6.2f µs CPU/event  %9.0f events/s  peak RSS %5.0f MB%s",
		med(result.cpuPerEvent), med(result.perSec), med(func(r result) float64 { return r.rssMB }),
		anon(med(func(r result) float64 { return r.anonMB })))
}

func main() {
	mode := flag.String("mode", "datagen", "datagen, cdc, redis or redis-cdc")
	bin := flag.String("bin", "bin/rivven-connect", "the CLI to run")
	pipeline := flag.String("c", "samples/bench/datagen-transforms.yaml", "pipeline file (mode datagen)")
	n := flag.Int("events", 0, "events (rows) per run; default 300000 for datagen, 200000 for the others")
	runs := flag.Int("runs", 3, "runs; the median is reported")
	extra := flag.String("args", "", "more arguments for `local`, space-separated (e.g. --trigger sqs)")
	recv := flag.String("pg_recvlogical", "pg_recvlogical", "pg_recvlogical to compare with (mode cdc)")
	pgURL := flag.String("pg", "host=127.0.0.1 port=5432 dbname=test user=postgres sslmode=disable", "PostgreSQL to load (modes cdc and redis-cdc)")
	redisAddr := flag.String("redis", "", "Redis for topics and state (modes redis and redis-cdc); default: a private redis-server the run starts, so that its command counts and CPU are the pipeline's alone")
	redisServer := flag.String("redis-server", "redis-server", "redis-server to start when -redis is not given")
	flag.Parse()

	if *n == 0 {
		*n = 200000
		if *mode == "datagen" {
			*n = 300000
		}
	}
	if (*mode == "redis" || *mode == "redis-cdc") && *redisAddr == "" {
		srv, err := startRedis(*redisServer)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benche2e:", err)
			os.Exit(1)
		}
		defer srv.stop()
		*redisAddr, private = srv.addr, srv
	}
	var run func() ([]string, []result, error)
	var calibrate func(n int) error // a run under MONITOR, for the round trips
	switch *mode {
	case "datagen":
		fmt.Printf("rivven-connect local -c %s --max-events %d %s\n", *pipeline, *n, *extra)
		run = func() ([]string, []result, error) {
			r, err := local(*bin, *pipeline, *n, strings.Fields(*extra))
			return []string{"local"}, []result{r}, err
		}
	case "cdc":
		fmt.Printf("%d rows in one transaction: rivven-connect local (postgres-cdc → drop) vs %s (pgoutput proto 2, streaming)\n", *n, *recv)
		run = func() ([]string, []result, error) { return cdc(*bin, *recv, *pgURL, *n, strings.Fields(*extra)) }
	case "redis":
		fmt.Printf("%d datagen orders: rivven-connect run source → Redis Streams at %s → run sink (drop)\n", *n, *redisAddr)
		run = func() ([]string, []result, error) { return redisRun(*bin, *redisAddr, *n) }
		calibrate = func(n int) error { _, _, err := redisRun(*bin, *redisAddr, n); return err }
	case "redis-cdc":
		fmt.Printf("%d rows in one transaction: rivven-connect run source (postgres-cdc) → Redis Streams at %s → run sink (drop)\n", *n, *redisAddr)
		run = func() ([]string, []result, error) { return redisCDC(*bin, *redisAddr, *pgURL, *n) }
		calibrate = func(n int) error { _, _, err := redisCDC(*bin, *redisAddr, *pgURL, n); return err }
	default:
		fmt.Fprintln(os.Stderr, "benche2e: -mode must be datagen, cdc, redis or redis-cdc")
		os.Exit(2)
	}
	fmt.Printf("load average before: %s\n", loadavg())
	var names []string
	var all [][]result
	for i := range *runs {
		ns, rs, err := run()
		if err != nil {
			fmt.Fprintln(os.Stderr, "benche2e:", err)
			if private != nil {
				private.stop()
			}
			os.Exit(1)
		}
		names = ns
		if all == nil {
			all = make([][]result, len(rs))
		}
		for j, r := range rs {
			fmt.Printf("run %d %-22s %s\n", i+1, names[j]+":", r)
			all[j] = append(all[j], r)
		}
	}
	for j, rs := range all {
		fmt.Printf("median %-22s %s\n", names[j]+":", median(rs))
	}
	if *mode == "cdc" && len(all) == 2 {
		v := make([]float64, len(all[0]))
		for i := range v {
			v[i] = all[0][i].perSec() / all[1][i].perSec()
		}
		slices.Sort(v)
		fmt.Printf("median rows/s ratio rivven-connect / pg_recvlogical: %.2f\n", v[len(v)/2])
	}
	if calibrate != nil {
		// MONITOR costs Redis more than the commands it shows, so the
		// round trips are counted on a run of their own.
		monitorTrips = true
		if err := calibrate(min(*n, 20480)); err != nil {
			fmt.Fprintln(os.Stderr, "benche2e:", err)
		}
	}
	fmt.Printf("load average after: %s\n", loadavg())
}

// local runs `rivven-connect local` on a pipeline until --max-events n.
func local(bin, pipeline string, n int, extra []string) (result, error) {
	args := append([]string{"local", "-c", pipeline, "--max-events", fmt.Sprint(n), "--quiet"}, extra...)
	return measure(exec.Command(bin, args...), n)
}

// measure runs cmd to its end, stdout to /dev/null, and reads its usage.
func measure(cmd *exec.Cmd, n int) (result, error) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return result{}, err
	}
	defer devnull.Close()
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = devnull, &stderr
	start := time.Now()
	fail := func(err error) (result, error) {
		return result{}, fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	done := make(chan struct{})
	peak := make(chan float64)
	go func() { peak <- pollAnon(cmd.Process.Pid, done) }()
	err = cmd.Wait()
	close(done)
	anonMB := <-peak
	if err != nil {
		return fail(err)
	}
	r, err := usage(cmd, n, time.Since(start))
	r.anonMB = anonMB
	return r, err
}

// pollAnon is the largest RssAnon of /proc/PID/status (MB) seen every
// 20 ms until done; 0 where there is no such file.
func pollAnon(pid int, done <-chan struct{}) float64 {
	path := fmt.Sprintf("/proc/%d/status", pid)
	var most float64
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if b, err := os.ReadFile(path); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				var kb float64
				if _, err := fmt.Sscanf(l, "RssAnon: %f kB", &kb); err == nil {
					most = max(most, kb/1024)
				}
			}
		}
		select {
		case <-done:
			return most
		case <-t.C:
		}
	}
}

// usage is a finished child's CPU and peak RSS.
func usage(cmd *exec.Cmd, n int, wall time.Duration) (result, error) {
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return result{}, fmt.Errorf("no resource usage of the child on this system")
	}
	return result{
		events: n,
		cpu:    time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		wall:   wall,
		rssMB:  float64(ru.Maxrss) / 1024, // kB on Linux
	}, nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
