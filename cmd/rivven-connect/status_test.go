package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/events"
)

// TestMain lets a test run the CLI as its own process (on a terminal the
// test made) by re-executing the test binary.
func TestMain(m *testing.M) {
	if os.Getenv("RIVVEN_TEST_CLI") == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestChooseMode(t *testing.T) {
	for _, c := range []struct {
		json, stderrTTY, same bool
		want                  statusMode
	}{
		{false, true, false, modeRedraw},    // stdout piped or on another terminal
		{false, false, false, modePeriodic}, // stderr to a file
		{true, true, false, modeJSON},
		{true, false, false, modeJSON},
		{false, true, true, modeFinal}, // `go tool task local` on a terminal
		{true, true, true, modeFinal},
		{false, false, true, modeFinal}, // > out 2>&1
	} {
		if got := chooseMode(c.json, c.stderrTTY, c.same); got != c.want {
			t.Errorf("chooseMode(json=%v, stderrTTY=%v, same=%v) = %v, want %v", c.json, c.stderrTTY, c.same, got, c.want)
		}
	}
}

func TestSameFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	a, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if !sameFile(a, a) || !sameFile(a, b) {
		t.Error("one file is not the same file")
	}
	if sameFile(a, w) || sameFile(a, &bytes.Buffer{}) {
		t.Error("a file and a pipe or buffer are the same file")
	}
}

// runOnTerminal runs `local` on the quickstart in its own process with
// stderr, and stdout unless stdout is given, on a new pseudo-terminal, and
// returns what the terminal showed (its line discipline writes \r\n).
func runOnTerminal(t *testing.T, stdout io.Writer, args ...string) string {
	t.Helper()
	master, slave := openPTY(t)
	cmd := exec.Command(os.Args[0], append([]string{"local", "-c", quickstart}, args...)...)
	cmd.Env = append(os.Environ(), "RIVVEN_TEST_CLI=1")
	cmd.Stdout, cmd.Stderr = slave, slave
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var screen bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&screen, master); close(done) }() // ends with EIO once the child is gone
	err := cmd.Wait()
	<-done
	if err != nil {
		t.Fatalf("local: %v\n%s", err, screen.String())
	}
	return screen.String()
}

// TestStatusLeavesSinkOutputAloneOnOneTerminal runs the quickstart the
// way `go tool task local` does on a terminal — stdout and stderr the same
// pseudo-terminal — and checks that every line the stdout sink printed
// arrived whole, that nothing moved the cursor or cleared a line, and that
// the final status (with its dropped column) counts as many events as
// arrived.
func TestStatusLeavesSinkOutputAloneOnOneTerminal(t *testing.T) {
	screen := runOnTerminal(t, nil, "--max-events", "60")
	if strings.Contains(screen, "\x1b[") {
		t.Errorf("the status drew escape sequences among the sink's output:\n%q", screen)
	}
	var events_, other []string
	for _, l := range strings.Split(screen, "\r\n") {
		if strings.HasPrefix(l, "{") {
			events_ = append(events_, l)
		} else if l != "" {
			other = append(other, l)
		}
	}
	for _, l := range events_ {
		if _, err := events.Unmarshal([]byte(l)); err != nil {
			t.Errorf("a sink line was cut: %v: %q", err, l)
		}
	}
	sinkLine := regexp.MustCompile(`^sink +console +stdout +Stopped +in (\d+) +out (\d+) +dropped (\d+) +err 0`)
	var out int = -1
	for _, l := range other {
		if m := sinkLine.FindStringSubmatch(l); m != nil {
			out, _ = strconv.Atoi(m[2])
		}
	}
	if out != len(events_) || out <= 0 {
		t.Errorf("final sink status says out %d, the terminal shows %d events; other lines:\n%s", out, len(events_), strings.Join(other, "\n"))
	}
	if !strings.Contains(screen, "status: shown when the run ends") {
		t.Errorf("no note that status waits for the end:\n%s", strings.Join(other, "\n"))
	}
}

// TestStatusRedrawsWhenStdoutIsElsewhere: with stdout on a pipe, the
// terminal on stderr gets the live, redrawn status, and the pipe only
// whole events.
func TestStatusRedrawsWhenStdoutIsElsewhere(t *testing.T) {
	var out bytes.Buffer
	screen := runOnTerminal(t, &out, "--max-events", "60")
	if !strings.Contains(screen, "\x1b[2K") {
		t.Errorf("no live status on the terminal:\n%q", screen)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for _, l := range lines {
		if _, err := events.Unmarshal([]byte(l)); err != nil {
			t.Fatalf("stdout line is not an event: %v: %q", err, l)
		}
	}
	if !strings.Contains(screen, fmt.Sprintf("out %-8d dropped", len(lines))) {
		t.Errorf("final status does not count the %d events:\n%q", len(lines), screen)
	}
}
