package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rivven/rivven-connect/shared/pipeline"
)

func init() {
	register(command{"snapshot", "Ask a running CDC source to snapshot tables again while it streams", runSnapshot})
}

// runSnapshot writes a snapshot signal for SOURCE's tables where the
// running source reads it (postgres-cdc: its database's WAL; mysql-cdc:
// a row of its signal table, which reaches it through the binlog); the source
// reads the tables alongside its stream, reconciled with it by
// watermarks. The command returns once the signal is written.
func runSnapshot(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("snapshot", "-c FILE SOURCE TABLE [TABLE...] [--timeout 30s]", stdout)
	file := fs.String("c", "", "pipeline file")
	timeout := fs.Duration("timeout", 30*time.Second, "time allowed to write the signal")
	pos, err := parseWith(fs, args, 64)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return exitWith(exitUsage, fmt.Errorf("name the source and at least one table: rivven-connect snapshot -c FILE SOURCE TABLE"))
	}
	p, err := loadPipeline(*file)
	if err != nil {
		return err
	}
	name, tables := pos[0], pos[1:]
	s, ok := p.Sources[name]
	if !ok {
		return exitWith(exitUsage, fmt.Errorf("the pipeline has no source %q (sources: %s)", name, strings.Join(p.SourceNames(), ", ")))
	}
	built, err := builder(p).NewSource(ctx, s.Connector, &s.Config, "sources."+name+".config")
	if err != nil {
		return exitWith(exitUsage, err)
	}
	src := pipeline.Unwrap(built)
	if c, ok := src.(pipeline.Closer); ok {
		defer func() { _ = c.Close(ctx) }()
	}
	r, ok := src.(pipeline.SnapshotRequester)
	if !ok {
		return exitWith(exitUsage, fmt.Errorf("source %s (%s) cannot take a snapshot on request (postgres-cdc and mysql-cdc can)", name, s.Connector))
	}
	sctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := r.RequestSnapshot(sctx, tables); err != nil {
		return exitWith(exitFailed, fmt.Errorf("source %s: %w", name, err))
	}
	fmt.Fprintf(stdout, "requested a snapshot of %s from source %s: the running source reads it alongside its stream (or when it next starts)\n", strings.Join(tables, ", "), name)
	return nil
}
