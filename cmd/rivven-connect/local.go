package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rivven/rivven-connect/connectors/catalog"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/telemetry"
)

func runLocal(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("local", "-c FILE [--max-events N] [--duration D] [--json] [--status-interval D]", stdout)
	file := fs.String("c", "", "pipeline file")
	maxEvents := fs.Int64("max-events", 0, "stop sources after N events in total, deliver everything, then exit")
	duration := fs.Duration("duration", 0, "stop sources after this long (e.g. 30s), deliver everything, then exit")
	asJSON := fs.Bool("json", false, "write status as JSON lines on stderr (for scripts)")
	interval := fs.Duration("status-interval", 0, "how often status is printed when stderr is not a terminal (default 5s; 0 with --json too)")
	quiet := fs.Bool("quiet", false, "no live status, only the final summary")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (default: settings.log_level)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *maxEvents < 0 {
		return exitWith(exitUsage, errors.New("--max-events must be ≥ 0"))
	}
	p, err := loadPipeline(*file)
	if err != nil {
		return err
	}
	level := p.Settings.LogLevel
	if *logLevel != "" {
		level = *logLevel
	}
	log, err := telemetry.NewLogger(stderr, level, *asJSON || !isTerminal(stderr))
	if err != nil {
		return exitWith(exitUsage, err)
	}

	redisURL := p.Settings.State.RedisURL
	if redisURL == "" {
		redisURL = os.Getenv("REDIS_URL")
	}
	store, err := state.Open(ctx, redisURL)
	if err != nil {
		return exitWith(exitFailed, err)
	}
	defer store.Close()

	disp := newStatusDisplay(stderr, *asJSON, *quiet, *interval)
	var reg *telemetry.Registry
	l, err := pipeline.NewLocal(ctx, p, catalog.Builder{}, pipeline.LocalOptions{
		MaxEvents: *maxEvents, Duration: *duration, Store: store, Log: log,
		OnStart: func(st pipeline.Statuses) {
			if p.Settings.Metrics.Enabled || p.Settings.Health.Enabled {
				reg = telemetry.NewRegistry()
				reg.Watch(st)
			}
			disp.start(st)
		},
	})
	if err != nil {
		return exitWith(exitUsage, err)
	}
	if p.Settings.Metrics.Enabled || p.Settings.Health.Enabled {
		if err := serveTelemetry(ctx, p.Settings.Metrics.Port, p.Settings.Health.Port, l.Statuses(), log); err != nil {
			return exitWith(exitFailed, err)
		}
	}
	_ = reg
	start := time.Now()
	runErr := l.Run(ctx)
	disp.stop(time.Since(start))
	if runErr != nil {
		return exitWith(exitFailed, runErr)
	}
	return nil
}

// serveTelemetry serves /metrics and /health for the emulator.
func serveTelemetry(ctx context.Context, metricsPort, healthPort int, st pipeline.Statuses, log interface {
	Info(string, ...any)
}) error {
	reg := telemetry.NewRegistry()
	reg.Watch(st)
	health := func() (bool, any) {
		ok := true
		detail := map[string]string{}
		for _, s := range st {
			detail[s.Kind+"/"+s.Name] = s.State().String()
			if s.State() != pipeline.Running && s.State() != pipeline.Stopped {
				ok = false
			}
		}
		return ok, detail
	}
	addr, err := reg.Start(ctx, fmt.Sprintf(":%d", metricsPort), health)
	if err != nil {
		return fmt.Errorf("metrics endpoint: %w", err)
	}
	log.Info("metrics and health served", "addr", addr, "metrics", "/metrics", "health", "/health")
	_ = healthPort
	return nil
}
