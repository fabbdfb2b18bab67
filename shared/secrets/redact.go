package secrets

import (
	"encoding/json"
	"io"
	"sort"
	"strings"
	"sync"
)

// minRedact is the shortest value redacted: shorter ones ("1", "on")
// would blank out unrelated text.
const minRedact = 4

var known struct {
	sync.RWMutex
	vals []string // longest first
	seen map[string]bool
}

// Remember adds a resolved value to those Redact hides, in the forms it
// takes in text and in JSON.
func Remember(v string) {
	if len(v) < minRedact {
		return
	}
	forms := []string{v}
	if b, err := json.Marshal(v); err == nil {
		if q := string(b[1 : len(b)-1]); q != v {
			forms = append(forms, q)
		}
	}
	known.Lock()
	defer known.Unlock()
	if known.seen == nil {
		known.seen = map[string]bool{}
	}
	for _, f := range forms {
		if !known.seen[f] {
			known.seen[f] = true
			known.vals = append(known.vals, f)
		}
	}
	sort.Slice(known.vals, func(i, j int) bool { return len(known.vals[i]) > len(known.vals[j]) })
}

// Known returns the remembered values (for redactors built elsewhere).
func Known() []string {
	known.RLock()
	defer known.RUnlock()
	return append([]string(nil), known.vals...)
}

// Redact replaces every resolved secret value in s by "****".
func Redact(s string) string {
	known.RLock()
	defer known.RUnlock()
	for _, v := range known.vals {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, "****")
		}
	}
	return s
}

// RedactWriter returns w with every resolved secret value replaced by
// "****" in what is written to it: log handlers and the CLI's output go
// through it, so a value that reached an error message anyway (a driver
// quoting its DSN) is not shown. Each Write is redacted on its own, which
// holds for log records and printed lines (one Write each).
func RedactWriter(w io.Writer) io.Writer {
	if rw, ok := w.(*redactWriter); ok {
		return rw
	}
	return &redactWriter{w: w}
}

type redactWriter struct{ w io.Writer }

// Unwrap returns the writer written to (a caller asking whether it is a
// terminal looks through the redaction).
func (r *redactWriter) Unwrap() io.Writer { return r.w }

func (r *redactWriter) Write(p []byte) (int, error) {
	known.RLock()
	n := len(known.vals)
	known.RUnlock()
	if n == 0 {
		return r.w.Write(p)
	}
	if _, err := io.WriteString(r.w, Redact(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// RedactError returns err with its message redacted, or err itself when
// it holds no secret value; nil stays nil.
func RedactError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := Redact(msg); red != msg {
		return &redacted{msg: red, err: err}
	}
	return err
}

type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }

// Unwrap keeps errors.Is and errors.As working on the original (whose
// message a caller could print; callers print Error()).
func (e *redacted) Unwrap() error { return e.err }
