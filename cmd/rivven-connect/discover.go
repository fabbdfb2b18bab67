package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rivven/rivven-connect/shared/pipeline"
)

func init() {
	register(command{"discover", "List what a source could read (tables, keys, row estimates)", runDiscover})
}

// runDiscover asks each source that can (postgres-cdc, mysql-cdc) what it
// sees: tables, primary keys, columns and row estimates, with a note on
// tables it could not read as configured.
func runDiscover(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("discover", "-c FILE [SOURCE] [--json] [--columns] [--timeout 30s]", stdout)
	file := fs.String("c", "", "pipeline file")
	asJSON := fs.Bool("json", false, "print JSON (one object per source)")
	columns := fs.Bool("columns", false, "list every table's columns too")
	timeout := fs.Duration("timeout", 30*time.Second, "time allowed for each source")
	want, err := parseWith(fs, args, 1)
	if err != nil {
		return err
	}
	p, err := loadPipeline(*file)
	if err != nil {
		return err
	}
	names := p.SourceNames()
	if len(want) > 0 {
		if _, ok := p.Sources[want[0]]; !ok {
			return exitWith(exitUsage, fmt.Errorf("the pipeline has no source %q (sources: %s)", want[0], strings.Join(names, ", ")))
		}
		names = want[:1]
	}
	b := builder(p)
	failed, found := 0, 0
	for _, name := range names {
		s := p.Sources[name]
		built, err := b.NewSource(ctx, s.Connector, &s.Config, "sources."+name+".config")
		if err != nil {
			return exitWith(exitUsage, err)
		}
		src := pipeline.Unwrap(built)
		d, ok := src.(pipeline.Discoverer)
		if !ok {
			if len(names) == 1 {
				return exitWith(exitUsage, fmt.Errorf("source %s (%s) cannot list what it reads", name, s.Connector))
			}
			continue
		}
		found++
		dctx, cancel := context.WithTimeout(ctx, *timeout)
		streams, err := d.Discover(dctx)
		cancel()
		if c, ok := src.(pipeline.Closer); ok {
			_ = c.Close(ctx)
		}
		if err != nil {
			failed++
			if *asJSON {
				writeJSONLine(stdout, map[string]any{"source": name, "connector": s.Connector, "error": err.Error()})
			} else {
				fmt.Fprintf(stdout, "✗ source %s (%s): %v\n", name, s.Connector, err)
			}
			continue
		}
		if *asJSON {
			writeJSONLine(stdout, map[string]any{"source": name, "connector": s.Connector, "streams": streams})
			continue
		}
		printStreams(stdout, name, s.Connector, streams, *columns)
	}
	if found == 0 {
		return exitWith(exitUsage, errors.New("no source of this pipeline can list what it reads (postgres-cdc and mysql-cdc can)"))
	}
	if failed > 0 {
		return exitWith(exitFailed, fmt.Errorf("%d source(s) could not be asked", failed))
	}
	return nil
}

func writeJSONLine(w io.Writer, v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintf(w, "%s\n", b)
}

func printStreams(w io.Writer, name, connector string, streams []pipeline.Stream, columns bool) {
	fmt.Fprintf(w, "source %s (%s): %d table(s)\n", name, connector, len(streams))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TABLE\tPRIMARY KEY\tROWS (est.)\tNOTE")
	for _, s := range streams {
		table := s.Name
		if s.Namespace != "" {
			table = s.Namespace + "." + s.Name
		}
		rows := "?"
		if s.RowEstimate >= 0 {
			rows = human(float64(s.RowEstimate))
		}
		pk := strings.Join(s.PrimaryKey, ", ")
		if pk == "" {
			pk = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", table, pk, rows, s.Note)
		if columns {
			for _, c := range s.Columns {
				null := ""
				if c.Nullable {
					null = " null"
				}
				fmt.Fprintf(tw, "    %s\t%s%s\t\t\n", c.Name, c.Type, null)
			}
		}
	}
	tw.Flush()
}
