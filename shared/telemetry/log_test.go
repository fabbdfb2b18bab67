package telemetry

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in   string
		want slog.Level
	}{
		{"debug", slog.LevelDebug},
		{"info", slog.LevelInfo},
		{"", slog.LevelInfo},
		{"warn", slog.LevelWarn},
		{"error", slog.LevelError},
		{"WARN", slog.LevelWarn},
		{" Debug\n", slog.LevelDebug},
	}
	for _, tt := range tests {
		got, err := ParseLevel(tt.in)
		if err != nil {
			t.Errorf("ParseLevel(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseLevel(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}

	for _, bad := range []string{"verbose", "warning", "trace", "0"} {
		_, err := ParseLevel(bad)
		if err == nil {
			t.Errorf("ParseLevel(%q): want error", bad)
			continue
		}
		// The message must tell the operator what would have worked.
		for _, allowed := range []string{"debug", "info", "warn", "error", bad} {
			if !strings.Contains(err.Error(), allowed) {
				t.Errorf("ParseLevel(%q) error %q does not mention %q", bad, err, allowed)
			}
		}
	}
}

func TestNewLoggerJSON(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "info", true)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hidden")
	log.Info("started", "connector", "datagen", "n", 3)

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want exactly the info line (debug filtered), got %d lines:\n%s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("line is not JSON: %v\n%s", err, lines[0])
	}
	for k, want := range map[string]any{"level": "INFO", "msg": "started", "connector": "datagen", "n": float64(3)} {
		if rec[k] != want {
			t.Errorf("%s = %#v, want %#v", k, rec[k], want)
		}
	}
	if _, ok := rec["time"]; !ok {
		t.Error("JSON record has no time")
	}
}

func TestNewLoggerText(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "debug", false)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("polling", "table", "orders")

	out := buf.String()
	if json.Valid(bytes.TrimSpace(buf.Bytes())) {
		t.Fatalf("text logger wrote JSON: %s", out)
	}
	for _, want := range []string{"level=DEBUG", "msg=polling", "table=orders"} {
		if !strings.Contains(out, want) {
			t.Errorf("text output %q lacks %q", out, want)
		}
	}
}

func TestNewLoggerLevelFilters(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "error", true)
	if err != nil {
		t.Fatal(err)
	}
	log.Warn("w")
	log.Error("e")
	if n := strings.Count(buf.String(), "\n"); n != 1 {
		t.Fatalf("want only the error record, got %d:\n%s", n, buf.String())
	}
}

func TestLoggersRejectUnknownLevel(t *testing.T) {
	if _, err := NewLogger(&bytes.Buffer{}, "loud", true); err == nil {
		t.Error("NewLogger: want error for unknown level")
	}
}
