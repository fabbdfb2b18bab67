package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/dashboard"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/resilience"
)

// uiFlag is --ui [ADDR]: given alone it turns the dashboard on at
// settings.ui.address; given a value (--ui=ADDR or --ui ADDR) it listens
// there.
type uiFlag struct {
	on   bool
	addr string
}

func (f *uiFlag) String() string {
	if f == nil || !f.on {
		return ""
	}
	return f.addr
}

func (f *uiFlag) Set(v string) error {
	f.on = true
	switch v {
	case "true":
		f.addr = ""
	case "false":
		f.on = false
	default:
		f.addr = v
	}
	return nil
}

// IsBoolFlag lets --ui stand alone.
func (*uiFlag) IsBoolFlag() bool { return true }

const uiUsage = "serve the live dashboard on ADDR (host:port, :port or port; alone: settings.ui.address, default 127.0.0.1:8088)"

// uiArgs turns "--ui ADDR" into "--ui=ADDR" when the next argument is an
// address, since the flag package reads a value after a boolean flag only
// with "=".
func uiArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if (a == "--ui" || a == "-ui") && i+1 < len(args) && looksLikeAddr(args[i+1]) {
			out = append(out, a+"="+args[i+1])
			i++
			continue
		}
		out = append(out, a)
	}
	return out
}

func looksLikeAddr(s string) bool {
	if s == "" || strings.HasPrefix(s, "-") {
		return false
	}
	if strings.Contains(s, ":") {
		return true
	}
	return strings.Trim(s, "0123456789") == "" // a bare port
}

// uiAddr is where the dashboard listens, or "" when it is off.
func uiAddr(f *uiFlag, set config.UI) string {
	if !f.on && !set.Enabled {
		return ""
	}
	addr := f.addr
	if addr == "" {
		addr = set.Address
	}
	if addr == "" {
		addr = "127.0.0.1:8088"
	}
	if strings.Trim(addr, "0123456789") == "" {
		addr = "127.0.0.1:" + addr
	}
	return addr
}

// newDashboard returns the dashboard of p, or nil when it is off.
func newDashboard(p *config.Pipeline, f *uiFlag, title string) *dashboard.Server {
	if uiAddr(f, p.Settings.UI) == "" {
		return nil
	}
	return dashboard.New(dashboard.Options{Pipeline: p, Title: title, Redact: resilience.NewRedactor(secretValues(p)...).Redact})
}

// startDashboard serves d (when on) for the statuses until ctx is done.
func startDashboard(ctx context.Context, d *dashboard.Server, p *config.Pipeline, f *uiFlag, st pipeline.Statuses, log *slog.Logger) error {
	if d == nil {
		return nil
	}
	addr, err := d.Start(ctx, uiAddr(f, p.Settings.UI), st)
	if err != nil {
		return fmt.Errorf("dashboard (--ui, settings.ui.address): %w", err)
	}
	log.Info("dashboard served", "url", "http://"+addr+"/")
	return nil
}
