package telemetry

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/rivven/rivven-connect/shared/secrets"
)

// levelNames lists the accepted level names in severity order; it doubles as
// the text of the error for anything else, so the message always matches what
// ParseLevel really accepts.
var levelNames = []string{"debug", "info", "warn", "error"}

// ParseLevel maps a configured level name (debug, info, warn, error; case and
// surrounding space ignored) to a slog.Level. The empty string means info so
// that an unset RIVVEN_LOG_LEVEL-style setting needs no special casing by the
// caller. Anything else is an error that lists the allowed values, because a
// typo in a log level should fail at startup rather than silently log at a
// level the operator did not ask for.
func ParseLevel(level string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(level)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	default:
		return 0, fmt.Errorf("telemetry: unknown log level %q (allowed: %s)",
			level, strings.Join(levelNames, ", "))
	}
}

// NewLogger returns a logger that writes to w at the given level: JSON lines
// when json is true (for log collectors such as CloudWatch Logs or Cloud
// Logging, which index JSON fields), human-readable key=value text otherwise.
func NewLogger(w io.Writer, level string, json bool) (*slog.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lvl}
	// No value read through a secret reference is ever logged.
	w = secrets.RedactWriter(w)
	if json {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}
