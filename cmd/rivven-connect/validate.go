package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/secrets"
	"github.com/rivven/rivven-connect/shared/spec"
)

// loadPipeline loads a file; an invalid file is a usage error (exit 2).
func init() {
	register(command{"validate", "Validate a pipeline file and report every problem with its line", runValidate})
	register(command{"schema", "Print the JSON Schema of the pipeline file", runSchema})
	register(command{"check", "Run each connector's health check", runCheck})
}

func loadPipeline(path string) (*config.Pipeline, error) {
	if path == "" {
		return nil, exitWith(exitUsage, errors.New("-c FILE is required"))
	}
	p, err := config.Load(path, catalog.Default, config.Options{})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, exitWith(exitUsage, err)
	}
	if ps := config.Problems(err); ps != nil {
		return nil, exitWith(exitUsage, fmt.Errorf("%s is invalid:\n%s", path, formatProblems(path, ps)))
	}
	return p, err
}

// formatProblems prints one line per listed problem; the loader lists at
// most spec.MaxProblems, then a line counting the rest.
func formatProblems(path string, ps spec.Problems) string {
	var b []byte
	for _, p := range ps {
		if p.Omitted > 0 {
			b = fmt.Appendf(b, "  %s\n", p.Message)
			continue
		}
		if p.Line > 0 {
			b = fmt.Appendf(b, "  %s:%d:%d: ", path, p.Line, p.Column)
		} else {
			b = fmt.Appendf(b, "  %s: ", path)
		}
		if p.Path != "" {
			b = fmt.Appendf(b, "%s: ", p.Path)
		}
		b = fmt.Appendf(b, "%s\n", p.Message)
	}
	return fmt.Sprintf("%s  %d problem(s)", b, ps.Count())
}

func runValidate(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("validate", "-c FILE [--json] [--offline]", stdout)
	file := fs.String("c", "", "pipeline file")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	offline := fs.Bool("offline", false, "do not resolve secret references (no secret store is contacted)")
	timeout := fs.Duration("timeout", 30*time.Second, "time allowed for resolving the secret references")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *file == "" {
		return exitWith(exitUsage, errors.New("-c FILE is required"))
	}
	p, err := config.Load(*file, catalog.Default, config.Options{})
	ps := config.Problems(err)
	if err != nil && ps == nil {
		return exitWith(exitUsage, err)
	}
	if err == nil && !*offline && pipeline.HasSecretRefs(p) {
		// Every reference is read once, so that one the store refuses is
		// reported here with its YAML path, not at the first event.
		rctx, cancel := context.WithTimeout(ctx, *timeout)
		r := pipeline.NewResolver(p)
		ps = pipeline.CheckSecrets(rctx, p, r)
		cancel()
		_ = r.Close()
		if len(ps) > 0 {
			err = ps
		}
	}
	if *asJSON {
		type problem struct {
			Path    string `json:"path"`
			Line    int    `json:"line"`
			Column  int    `json:"column"`
			Message string `json:"message"`
		}
		// problems lists the first spec.MaxProblems by position; count
		// is how many there are in all.
		out := struct {
			File     string    `json:"file"`
			Valid    bool      `json:"valid"`
			Count    int       `json:"count"`
			Problems []problem `json:"problems"`
		}{File: *file, Valid: err == nil, Count: ps.Count(), Problems: []problem{}}
		for _, p := range ps.Listed() {
			out.Problems = append(out.Problems, problem{p.Path, p.Line, p.Column, p.Message})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if e := enc.Encode(out); e != nil {
			return e
		}
		if err != nil {
			return exitWith(exitUsage, errors.New(""))
		}
		return nil
	}
	if err != nil {
		return exitWith(exitUsage, fmt.Errorf("%s is invalid:\n%s", *file, formatProblems(*file, ps)))
	}
	var nt int
	for _, s := range p.Sources {
		nt += len(s.Transforms)
	}
	for _, s := range p.Sinks {
		nt += len(s.Transforms)
	}
	fmt.Fprintf(stdout, "✓ %s is valid: %d source(s), %d sink(s), %d transform step(s)\n", *file, len(p.Sources), len(p.Sinks), nt)
	return nil
}

func runSchema(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("schema", "", stdout)
	if err := parse(fs, args); err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(config.JSONSchema(catalog.Default))
}

func runCheck(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("check", "-c FILE [--timeout 30s]", stdout)
	file := fs.String("c", "", "pipeline file")
	timeout := fs.Duration("timeout", 30*time.Second, "time allowed for each check")
	if err := parse(fs, args); err != nil {
		return err
	}
	p, err := loadPipeline(*file)
	if err != nil {
		return err
	}
	b := builder(p)
	failed := 0
	check := func(kind, name string, c any, buildErr error) {
		label := fmt.Sprintf("%-6s %-20s", kind, name)
		if buildErr != nil {
			failed++
			fmt.Fprintf(stdout, "✗ %s %v\n", label, buildErr)
			return
		}
		ch, ok := c.(pipeline.Checker)
		if !ok {
			fmt.Fprintf(stdout, "✓ %s ok (nothing external to reach)\n", label)
			return
		}
		cctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		start := time.Now()
		if err := ch.Check(cctx); err != nil {
			failed++
			fmt.Fprintf(stdout, "✗ %s %v\n", label, err)
			return
		}
		fmt.Fprintf(stdout, "✓ %s ok (%s)\n", label, time.Since(start).Round(time.Millisecond))
	}
	for _, name := range p.SourceNames() {
		s := p.Sources[name]
		src, err := b.NewSource(ctx, s.Connector, &s.Config, "sources."+name+".config")
		check("source", name, src, err)
	}
	for _, name := range p.SinkNames() {
		s := p.Sinks[name]
		snk, err := b.NewSink(ctx, s.Connector, &s.Config, "sinks."+name+".config")
		check("sink", name, snk, err)
	}
	if failed > 0 {
		return exitWith(exitFailed, fmt.Errorf("%d check(s) failed", failed))
	}
	return nil
}

// builder builds a pipeline's components with its secret references
// resolved (see pipeline.WithSecrets).
func builder(p *config.Pipeline) pipeline.Factory {
	return pipeline.WithSecrets(catalog.Builder{}, pipeline.NewResolver(p))
}

// loadToRun loads a pipeline to run and resolves the secret references of
// its settings and broker blocks (the Redis URL, broker credentials); the
// resolver then builds the components (builderWith), so each store is
// logged in to once.
func loadToRun(ctx context.Context, path string) (*config.Pipeline, *secrets.Resolver, error) {
	p, err := loadPipeline(path)
	if err != nil {
		return nil, nil, err
	}
	r := pipeline.NewResolver(p)
	if err := pipeline.ResolveSettings(ctx, p, r); err != nil {
		r.Close()
		if ps := config.Problems(err); ps != nil {
			return nil, nil, exitWith(exitUsage, fmt.Errorf("%s is invalid:\n%s", path, formatProblems(path, ps)))
		}
		return nil, nil, exitWith(exitUsage, err)
	}
	return p, r, nil
}

// builderWith builds components with the references resolved by r.
func builderWith(r *secrets.Resolver) pipeline.Factory {
	return pipeline.WithSecrets(catalog.Builder{}, r)
}
