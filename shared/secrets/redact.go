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
	vals  []string // longest first
	seen  map[string]bool
	share func(string)
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
	if known.seen == nil {
		known.seen = map[string]bool{}
	}
	isNew := !known.seen[v]
	for _, f := range forms {
		if !known.seen[f] {
			known.seen[f] = true
			known.vals = append(known.vals, f)
		}
	}
	sort.Slice(known.vals, func(i, j int) bool { return len(known.vals[i]) > len(known.vals[j]) })
	share := known.share
	known.Unlock()
	if isNew && share != nil {
		share(v)
	}
}

// Share makes Remember hand every new value to f before it returns, so
// before any caller can use the value: the CLI's child process tells its
// supervising parent, which redacts what the child writes to stderr, and
// waits until the parent has it (see cmd/rivven-connect). f must be safe
// for concurrent use.
func Share(f func(value string)) {
	known.Lock()
	defer known.Unlock()
	known.share = f
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

// StreamRedactor returns a writer that redacts a byte stream written in
// arbitrary pieces (a child's stderr read from a pipe), where a value may
// be split across two writes: a piece's tail that could begin a secret
// value is held back until the next write shows how it goes on. Close
// writes what is held ("****" when it is a long part of a value).
func StreamRedactor(w io.Writer) io.WriteCloser { return &streamRedactor{w: w} }

type streamRedactor struct {
	mu   sync.Mutex
	w    io.Writer
	held string
}

func (s *streamRedactor) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	text := Redact(s.held + string(p))
	keep := partialSuffix(text)
	s.held = text[len(text)-keep:]
	if _, err := io.WriteString(s.w, text[:len(text)-keep]); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (s *streamRedactor) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rest := s.held
	s.held = ""
	if len(rest) >= minRedact {
		rest = "****"
	}
	_, err := io.WriteString(s.w, rest)
	return err
}

// partialSuffix is the length of the longest tail of text that is a
// proper prefix of a remembered value.
func partialSuffix(text string) int {
	known.RLock()
	defer known.RUnlock()
	best := 0
	for _, v := range known.vals {
		for k := min(len(v)-1, len(text)); k > best; k-- {
			if strings.HasSuffix(text, v[:k]) {
				best = k
				break
			}
		}
	}
	return best
}
