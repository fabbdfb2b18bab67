// Command benche2e measures the path users run, through the built CLI:
// `rivven-connect local` on a datagen pipeline (samples/bench), stdout to
// /dev/null. For each run it prints µs of CPU per event (user + system of
// the child, from getrusage), events/s over the wall time and the child's
// peak RSS, then the median of the runs and the load average, since the
// machine is shared. `go tool task bench:e2e` builds the CLI and runs it.
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

type result struct {
	cpuPerEvent time.Duration
	perSec      float64
	rssMB       float64
}

func main() {
	bin := flag.String("bin", "bin/rivven-connect", "the CLI to run")
	pipeline := flag.String("c", "samples/bench/datagen-transforms.yaml", "pipeline file")
	n := flag.Int("events", 300000, "events per run (--max-events)")
	runs := flag.Int("runs", 3, "runs; the median is reported")
	extra := flag.String("args", "", "more arguments for `local`, space-separated (e.g. --trigger sqs)")
	flag.Parse()

	fmt.Printf("rivven-connect local -c %s --max-events %d %s\n", *pipeline, *n, *extra)
	fmt.Printf("load average before: %s\n", loadavg())
	var rs []result
	for i := range *runs {
		r, err := once(*bin, *pipeline, *n, strings.Fields(*extra))
		if err != nil {
			fmt.Fprintln(os.Stderr, "benche2e:", err)
			os.Exit(1)
		}
		fmt.Printf("run %d: %6.2f µs CPU/event  %9.0f events/s  peak RSS %5.0f MB\n", i+1,
			float64(r.cpuPerEvent.Nanoseconds())/1e3, r.perSec, r.rssMB)
		rs = append(rs, r)
	}
	med := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	fmt.Printf("median: %6.2f µs CPU/event  %9.0f events/s  peak RSS %5.0f MB\n",
		med(func(r result) float64 { return float64(r.cpuPerEvent.Nanoseconds()) / 1e3 }),
		med(func(r result) float64 { return r.perSec }),
		med(func(r result) float64 { return r.rssMB }))
	fmt.Printf("load average after: %s\n", loadavg())
}

func once(bin, pipeline string, n int, extra []string) (result, error) {
	args := append([]string{"local", "-c", pipeline, "--max-events", fmt.Sprint(n), "--quiet"}, extra...)
	cmd := exec.Command(bin, args...)
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return result{}, err
	}
	defer devnull.Close()
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = devnull, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	wall := time.Since(start)
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return result{}, fmt.Errorf("no resource usage of the child on this system")
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return result{
		cpuPerEvent: cpu / time.Duration(n),
		perSec:      float64(n) / wall.Seconds(),
		rssMB:       float64(ru.Maxrss) / 1024, // kB on Linux
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
