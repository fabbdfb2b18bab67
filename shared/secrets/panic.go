package secrets

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
)

// The Go runtime prints an unrecovered panic's value to file descriptor 2
// itself, past every redacting writer, and a panic value can hold a
// resolved secret (a connector panicking with its DSN). So goroutines the
// project starts end in Crash, which reports the panic with the value
// redacted and exits as the runtime would; panics of goroutines started by
// libraries, and the runtime's fatal errors, are redacted by the CLI's
// supervising parent (cmd/rivven-connect), which reads the real stderr.
//
// Re-panicking with a redacted value is no way out: the runtime then
// prints the recovered value too ("panic: <value> [recovered]").

// Crash reports a panic with its value and stack redacted and exits with
// status 2, the runtime's own for a panic. It must be deferred directly:
//
//	defer secrets.Crash()
func Crash() {
	v := recover()
	if v == nil {
		return
	}
	report(v, debug.Stack())
	os.Exit(2)
}

// crashOutput is where Crash reports (a test may swap it).
var crashOutput = func() *os.File { return os.Stderr }

func report(v any, stack []byte) {
	w := RedactWriter(crashOutput())
	fmt.Fprintf(w, "panic: %s\n\n%s", panicText(v), stack)
}

// panicText is what the runtime would print for v, redacted.
func panicText(v any) string {
	var s string
	switch x := v.(type) {
	case error:
		s = x.Error()
	case fmt.Stringer:
		s = x.String()
	default:
		s = fmt.Sprint(v)
	}
	return Redact(s)
}

// Go runs f in a new goroutine that ends in Crash.
func Go(f func()) {
	go func() {
		defer Crash()
		f()
	}()
}

// PanicValue returns v with every resolved secret value blanked out of
// it, for code that recovers a panic and hands it on (re-panics into a
// library that reports it, logs it): v itself when it holds no secret,
// else an error or string with the redacted text.
func PanicValue(v any) any {
	if v == nil {
		return nil
	}
	text := fmt.Sprint(v)
	if e, ok := v.(error); ok {
		text = e.Error()
	}
	red := Redact(text)
	if red == text {
		return v
	}
	if _, ok := v.(error); ok {
		return errors.New(red)
	}
	return red
}
