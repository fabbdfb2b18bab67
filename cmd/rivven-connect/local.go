package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/telemetry"
)

func init() {
	register(command{"local", "Run a pipeline in this process on in-memory topics", runLocal})
}

func runLocal(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("local", "-c FILE [--max-events N] [--duration D] [--json] [--status-interval D] [--ui [ADDR]] [--cpuprofile FILE] [--memprofile FILE]", stdout)
	file := fs.String("c", "", "pipeline file")
	maxEvents := fs.Int64("max-events", 0, "stop sources after N events in total, deliver everything, then exit")
	duration := fs.Duration("duration", 0, "stop sources after this long (e.g. 30s), deliver everything, then exit")
	asJSON := fs.Bool("json", false, "write status as JSON lines on stderr (for scripts)")
	interval := fs.Duration("status-interval", 0, "how often status is printed when stderr is not a terminal (default 5s; 0 with --json too)")
	quiet := fs.Bool("quiet", false, "no live status, only the final summary")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (default: settings.log_level)")
	trigger := fs.String("trigger", "", "wrap each batch in this trigger's envelope and hand it to the sinks through the serverless hosts' adapter: "+strings.Join(pipeline.LocalTriggers, ", ")+" (default: none, records go to the sinks' handlers directly)")
	ui := &uiFlag{}
	fs.Var(ui, "ui", uiUsage)
	prof := addProfileFlags(fs)
	if err := parse(fs, uiArgs(args)); err != nil {
		return err
	}
	if *maxEvents < 0 {
		return exitWith(exitUsage, errors.New("--max-events must be ≥ 0"))
	}
	p, resolver, err := loadToRun(ctx, *file)
	if err != nil {
		return err
	}
	defer resolver.Close()
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
	state.LogTo(log)
	store, err := state.Open(ctx, redisURL)
	if err != nil {
		return exitWith(exitFailed, err)
	}
	defer store.Close()

	disp := newStatusDisplay(stdout, stderr, *asJSON, *quiet, *interval)
	var reg *telemetry.Registry
	if p.Settings.Metrics.Enabled || p.Settings.Health.Enabled {
		reg = telemetry.NewRegistry()
	}
	opts := pipeline.LocalOptions{
		MaxEvents: *maxEvents, Duration: *duration, Store: store, Log: log, OnStart: disp.start, Metrics: reg,
		Trigger: *trigger,
	}
	dash := newDashboard(p, ui, "local")
	if dash != nil {
		opts.WrapProducer = dash.Tap
	}
	l, err := pipeline.NewLocal(ctx, p, builderWith(resolver), opts)
	if err != nil {
		return exitWith(exitUsage, err)
	}
	if err := startDashboard(ctx, dash, p, ui, l.Statuses(), log); err != nil {
		return exitWith(exitFailed, err)
	}
	if reg != nil {
		if err := serveTelemetry(ctx, reg, p.Settings, l.Statuses(), log); err != nil {
			return exitWith(exitFailed, err)
		}
	}
	stopProfiles, err := prof.start()
	if err != nil {
		return err
	}
	start := time.Now()
	runErr := l.Run(ctx)
	disp.stop(time.Since(start))
	if err := stopProfiles(); err != nil {
		log.Error("writing the profile failed", "error", err)
	}
	if dash != nil && ctx.Err() == nil {
		// The page is for looking: it shows the final numbers, errors and
		// samples until the user is done.
		log.Info("the pipeline finished; the dashboard shows its final state until interrupted (Ctrl-C)")
		<-ctx.Done()
	}
	if runErr != nil {
		return exitWith(exitFailed, runErr)
	}
	return nil
}

// serveTelemetry serves /metrics (settings.metrics) and the health path
// (settings.health) while the emulator runs.
func serveTelemetry(ctx context.Context, reg *telemetry.Registry, set config.Settings, st pipeline.Statuses, log *slog.Logger) error {
	reg.Watch(st)
	if set.Metrics.Enabled {
		addr, err := startMetrics(ctx, reg, set.Metrics, healthOf(st))
		if err != nil {
			return err
		}
		log.Info("metrics served", "url", "http://"+addr+"/metrics")
		if set.Metrics.Pprof {
			log.Info("profiles served", "url", "http://"+addr+"/debug/pprof/")
		}
	}
	// The metrics server answers /health too; a second server is needed
	// only on another port or path.
	if set.Health.Enabled && !(set.Metrics.Enabled && set.Health.Port == set.Metrics.Port && set.Health.Path == "/health") {
		mux := http.NewServeMux()
		mux.HandleFunc(set.Health.Path, func(w http.ResponseWriter, _ *http.Request) {
			ok, detail := healthOf(st)()
			w.Header().Set("Content-Type", "application/json")
			if !ok {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			json.NewEncoder(w).Encode(detail)
		})
		addr, err := telemetry.StartHTTP(ctx, fmt.Sprintf(":%d", set.Health.Port), mux)
		if err != nil {
			return fmt.Errorf("settings.health.port: %w", err)
		}
		log.Info("health served", "url", "http://"+addr+set.Health.Path)
	}
	return nil
}

// healthOf is healthy while no connector is Failed or still Starting.
func healthOf(st pipeline.Statuses) func() (bool, any) {
	return func() (bool, any) {
		ok := true
		detail := map[string]string{}
		for _, s := range st {
			detail[s.Kind+"/"+s.Name] = s.State().String()
			if s.State() == pipeline.Failed || s.State() == pipeline.Starting {
				ok = false
			}
		}
		return ok, detail
	}
}
