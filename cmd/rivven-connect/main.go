// Command rivven-connect lists, validates, checks and runs connector
// pipelines.
//
// Exit codes:
//
//	0  success
//	1  a connector failed (local/run), a health check failed (check)
//	2  usage error or invalid pipeline file
//	3  fenced: a newer instance of the same connector took over
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	_ "github.com/rivven/rivven-connect/connectors/all"
	"github.com/rivven/rivven-connect/shared/secrets"
	_ "github.com/rivven/rivven-connect/shared/secrets/all"
	"github.com/rivven/rivven-connect/shared/secrets/supervise"
	"github.com/rivven/rivven-connect/shared/telemetry"
	_ "github.com/rivven/rivven-connect/shared/telemetry/otlptrace"
)

// Exit codes (documented in the package comment and the README).
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	exitFenced  = 3
	exitSignals = 130
)

// exitError carries an exit code up to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitWith(code int, err error) error { return &exitError{code, err} }

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// Each command registers itself from its own file, so adding one touches
// nothing else; usage lists them in this order.
var order = []string{"connectors", "validate", "schema", "check", "discover", "snapshot", "local", "run", "invoke", "deploy", "build", "version"}

var registered = map[string]command{}

func register(c command) { registered[c.name] = c }

func commands() []command {
	var out []command
	for _, n := range order {
		if c, ok := registered[n]; ok {
			out = append(out, c)
		}
	}
	for n, c := range registered {
		if !slices.Contains(order, n) {
			out = append(out, c)
		}
	}
	return out
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "rivven-connect moves change events and records between systems.\n\nUsage:\n  rivven-connect <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'rivven-connect <command> --help' for a command's flags, 'rivven-connect --version' for the version.\n\nExit codes: 0 ok, 1 a connector or check failed, 2 usage or invalid config, 3 fenced.\n")
}

func main() {
	// Commands that resolve secrets run as a supervised child (see
	// supervise.go); this process only copies its stderr, redacted.
	if code, ok := superviseCommand(os.Args[1:]); ok {
		os.Exit(code)
	}
	stderr := supervise.Child()
	// A panic reaching main is reported with secret values blanked out.
	defer secrets.Crash()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// Every resolved secret value is blanked out of what is printed, should
	// one reach an error message (a driver quoting its DSN).
	stdout, stderr = secrets.RedactWriter(stdout), secrets.RedactWriter(stderr)
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = append([]string{"version"}, args[1:]...)
	}
	// Spans over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set (off
	// otherwise): run source, run sink and local trace each event.
	if shutdown, err := telemetry.StartTracing(ctx, "rivven-connect"); err != nil {
		fmt.Fprintf(stderr, "rivven-connect: tracing off: %v\n", err)
	} else {
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			_ = shutdown(sctx)
		}()
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		if err == nil {
			return exitOK
		}
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.err != nil && ee.err.Error() != "" {
				fmt.Fprintln(stderr, "error:", ee.err)
			}
			return ee.code
		}
		fmt.Fprintln(stderr, "error:", err)
		return exitFailed
	}
	fmt.Fprintf(stderr, "error: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

// newFlags makes a flag set whose --help prints to stdout and whose parse
// errors are usage errors.
func newFlags(name, synopsis string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: rivven-connect %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseWith parses flags and up to max positional arguments, which may
// come before, between or after the flags (`discover -c FILE pg` and
// `discover pg -c FILE` alike): the flag package stops at the first
// non-flag, so parsing resumes after each one.
func parseWith(fs *flag.FlagSet, args []string, max int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, exitWith(exitUsage, err)
		}
		if args = fs.Args(); len(args) == 0 {
			break
		}
		if len(pos) == max {
			return nil, exitWith(exitUsage, fmt.Errorf("unexpected argument %q", args[0]))
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	return pos, nil
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return exitWith(exitUsage, err)
	}
	if fs.NArg() > 0 {
		return exitWith(exitUsage, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	return nil
}
