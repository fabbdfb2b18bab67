package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/rivven/rivven-connect/shared/pipeline"
)

// fileOf returns the file under w, looking through writers that wrap one
// (the redaction of secret values).
func fileOf(w io.Writer) (*os.File, bool) {
	for {
		switch v := w.(type) {
		case *os.File:
			return v, true
		case interface{ Unwrap() io.Writer }:
			w = v.Unwrap()
		default:
			return nil, false
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := fileOf(w)
	return ok && term.IsTerminal(int(f.Fd()))
}

// sameFile reports whether two writers are one open file, terminal or not
// (2>&1, or both on the terminal a shell runs in).
func sameFile(a, b io.Writer) bool {
	fa, ok1 := fileOf(a)
	fb, ok2 := fileOf(b)
	if !ok1 || !ok2 {
		return false
	}
	sa, err1 := fa.Stat()
	sb, err2 := fb.Stat()
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// statusMode is how the status is shown.
type statusMode int

const (
	// modeRedraw redraws one line per connector in place (a terminal of
	// its own).
	modeRedraw statusMode = iota
	// modePeriodic prints the lines every interval (a file or pipe).
	modePeriodic
	// modeJSON prints JSON lines every interval (--json).
	modeJSON
	// modeFinal prints only the final state, once the sinks are done:
	// stdout and stderr are one terminal or file, so anything drawn while
	// sinks print would land in their output (a redraw moves the cursor
	// over it and clears it).
	modeFinal
)

// chooseMode decides from what stdout and stderr are. The sinks own
// stdout, so the status is drawn live only where it cannot touch their
// output.
func chooseMode(asJSON, stderrTTY, same bool) statusMode {
	switch {
	case same:
		return modeFinal
	case asJSON:
		return modeJSON
	case stderrTTY:
		return modeRedraw
	}
	return modePeriodic
}

// statusDisplay shows one line per connector on stderr (stdout belongs to
// sinks such as stdout): redrawn in place on a terminal, printed
// periodically otherwise, as JSON lines with --json; only at the end when
// stdout and stderr are the same terminal or file.
type statusDisplay struct {
	w        io.Writer
	mode     statusMode
	json     bool
	quiet    bool
	interval time.Duration

	st    pipeline.Statuses
	done  chan struct{}
	wg    sync.WaitGroup
	drawn int // lines drawn last time (terminal redraw)
	last  map[string]uint64
	lastT time.Time
	// meters turn each connector's snapshot progress into rate and ETA.
	meters map[string]*pipeline.ProgressMeter
}

func newStatusDisplay(stdout, stderr io.Writer, asJSON, quiet bool, interval time.Duration) *statusDisplay {
	mode := chooseMode(asJSON, isTerminal(stderr), sameFile(stdout, stderr))
	d := &statusDisplay{w: stderr, mode: mode, json: asJSON, quiet: quiet || mode == modeFinal, interval: interval, done: make(chan struct{})}
	if d.interval == 0 {
		d.interval = 5 * time.Second
		if mode == modeRedraw {
			d.interval = 200 * time.Millisecond
		}
	}
	if mode == modeFinal && !quiet {
		fmt.Fprintln(stderr, "status: shown when the run ends, since the sinks print to this same terminal or file (send stdout elsewhere, e.g. > events.jsonl, to watch it live)")
	}
	return d
}

func (d *statusDisplay) start(st pipeline.Statuses) {
	d.st = st
	d.last = map[string]uint64{}
	d.meters = map[string]*pipeline.ProgressMeter{}
	d.lastT = time.Now()
	if d.quiet {
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		t := time.NewTicker(d.interval)
		defer t.Stop()
		for {
			select {
			case <-d.done:
				return
			case <-t.C:
				d.draw(false, 0)
			}
		}
	}()
}

// stop ends the live display and prints the final state.
func (d *statusDisplay) stop(elapsed time.Duration) {
	close(d.done)
	d.wg.Wait()
	if d.st != nil {
		d.draw(true, elapsed)
	}
}

func (d *statusDisplay) draw(final bool, elapsed time.Duration) {
	now := time.Now()
	secs := now.Sub(d.lastT).Seconds()
	d.lastT = now
	if d.json {
		for _, s := range d.st {
			line := map[string]any{
				"time": now.UTC().Format(time.RFC3339Nano), "final": final,
				"kind": s.Kind, "name": s.Name, "connector": s.Connector, "state": s.State().String(),
				"events_in": s.EventsIn.Load(), "events_out": s.EventsOut.Load(), "errors": s.Errors.Load(),
				"dropped": s.Dropped.Load(), "dead_lettered": s.DeadLettered.Load(), "restarts": s.Restarts.Load(),
			}
			if lag := s.Lag.Load(); lag >= 0 {
				line["lag"] = lag
			}
			if e := s.LastError(); e != "" {
				line["last_error"] = e
			}
			if p := d.progress(s, now); len(p) > 0 {
				line["progress"] = p
			}
			b, _ := json.Marshal(line)
			fmt.Fprintf(d.w, "%s\n", b)
		}
		return
	}
	tty := d.mode == modeRedraw
	var b strings.Builder
	if tty && d.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", d.drawn) // back to the first status line
	}
	for _, s := range d.st {
		out := s.EventsOut.Load()
		rate := ""
		if !final && secs > 0 {
			rate = fmt.Sprintf("  %s/s", human(float64(out-d.last[s.Kind+s.Name])/secs))
		}
		d.last[s.Kind+s.Name] = out
		lag := "-"
		if l := s.Lag.Load(); l >= 0 {
			lag = human(float64(l))
		}
		line := fmt.Sprintf("%-6s %-16s %-10s %-8s in %-8s out %-8s dropped %-6s err %-5d lag %-6s%s",
			s.Kind, s.Name, s.Connector, s.State(), human(float64(s.EventsIn.Load())), human(float64(out)), human(float64(s.Dropped.Load())), s.Errors.Load(), lag, rate)
		if n := s.DeadLettered.Load(); n > 0 {
			line += fmt.Sprintf("  dlq %d", n)
		}
		if p := pipeline.ProgressLine(d.progress(s, now), human); p != "" && !final {
			line += "  " + p
		}
		if e := s.LastError(); e != "" && (s.State() == pipeline.Failed || final) {
			line += "  last error: " + e
		}
		if tty {
			b.WriteString("\x1b[2K") // clear the old line
		}
		b.WriteString(strings.TrimRight(line, " "))
		b.WriteByte('\n')
	}
	if final {
		fmt.Fprintf(&b, "finished in %s\n", elapsed.Round(time.Millisecond))
	}
	d.drawn = len(d.st)
	io.WriteString(d.w, b.String())
}

// progress is s's snapshot progress with the rate and time left measured
// across draws.
func (d *statusDisplay) progress(s *pipeline.Status, now time.Time) []pipeline.ProgressView {
	m := d.meters[s.Kind+s.Name]
	if m == nil {
		m = &pipeline.ProgressMeter{}
		d.meters[s.Kind+s.Name] = m
	}
	return m.Measure(now, s.Progress())
}

// human formats counts as 1234, 12.3k, 4.56M.
func human(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2fG", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
