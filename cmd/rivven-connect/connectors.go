package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/spec"
)

func init() {
	register(command{"connectors", "List registered connectors and transforms (--category, --kind, --search, --json, --docs NAME)", runConnectors})
}

func runConnectors(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("connectors", "[--category C] [--kind K] [--search TEXT] [--json] [--docs NAME]", stdout)
	category := fs.String("category", "", "only this category (Database, Messaging, Storage, Warehouse, Lakehouse, AI-ML, Utility, Transform)")
	kind := fs.String("kind", "", "only this kind (source, sink, transform)")
	search := fs.String("search", "", "case-insensitive search over name, aliases, description and tags, best match first")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	docs := fs.String("docs", "", "print the Markdown config table of one component")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *kind != "" && *kind != "source" && *kind != "sink" && *kind != "transform" {
		return exitWith(exitUsage, fmt.Errorf("--kind %q is not allowed (allowed: source, sink, transform)", *kind))
	}
	if *category != "" && !knownCategory(*category) {
		return exitWith(exitUsage, fmt.Errorf("--category %q is not allowed (allowed: %s)", *category, strings.Join(catalog.CategoryOrder, ", ")))
	}
	if *docs != "" {
		for _, k := range catalog.Kinds {
			if *kind != "" && string(k) != *kind {
				continue
			}
			if e, ok := catalog.Lookup(k, *docs); ok {
				fmt.Fprint(stdout, e.Docs())
				return nil
			}
		}
		return exitWith(exitUsage, fmt.Errorf("no component named %q", *docs))
	}

	var entries []*catalog.Entry
	if *search != "" {
		entries = catalog.Default.Search(*search)
	} else {
		entries = catalog.All()
	}
	filtered := entries[:0:0]
	for _, e := range entries {
		if *kind != "" && string(e.Kind) != *kind {
			continue
		}
		if *category != "" && !strings.EqualFold(e.Category, *category) {
			continue
		}
		filtered = append(filtered, e)
	}
	if *asJSON {
		return printCatalogJSON(stdout, filtered)
	}
	printCatalog(stdout, filtered, *search != "")
	return nil
}

func knownCategory(c string) bool {
	for _, x := range catalog.CategoryOrder {
		if strings.EqualFold(x, c) {
			return true
		}
	}
	return false
}

type catalogJSON struct {
	Name         string         `json:"name"`
	Aliases      []string       `json:"aliases,omitempty"`
	Kind         string         `json:"kind"`
	Category     string         `json:"category"`
	Subcategory  string         `json:"subcategory,omitempty"`
	Description  string         `json:"description"`
	Tags         []string       `json:"tags,omitempty"`
	Metrics      []string       `json:"metrics,omitempty"`
	ConfigSchema map[string]any `json:"config_schema"`
	// Package is the Go package that registered it (build --with finds a
	// plugin's components by it).
	Package string `json:"package"`
}

func printCatalogJSON(w io.Writer, entries []*catalog.Entry) error {
	out := make([]catalogJSON, 0, len(entries))
	for _, e := range entries {
		out = append(out, catalogJSON{
			Name: e.Name, Aliases: e.Aliases, Kind: string(e.Kind), Category: e.Category, Subcategory: e.Subcategory,
			Description: e.Description, Tags: e.Tags, Metrics: e.Metrics, ConfigSchema: spec.JSONSchema(e.Fields),
			Package: e.Package(),
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

const ruleWidth = 71

func printCatalog(w io.Writer, entries []*catalog.Entry, ranked bool) {
	var src, snk, trf int
	for _, e := range entries {
		switch e.Kind {
		case catalog.Source:
			src++
		case catalog.Sink:
			snk++
		case catalog.Transform:
			trf++
		}
	}
	title := "Rivven Connect - Connector Catalog"
	pad := ruleWidth - 2 - utf8.RuneCountInString(title)
	fmt.Fprintf(w, "╭%s╮\n│%s%s%s│\n╰%s╯\n\n", strings.Repeat("─", ruleWidth-2),
		strings.Repeat(" ", pad/2), title, strings.Repeat(" ", pad-pad/2), strings.Repeat("─", ruleWidth-2))
	fmt.Fprintf(w, "📊 Total: %d connectors (%d sources, %d sinks, %d transforms)\n", len(entries), src, snk, trf)
	if len(entries) == 0 {
		fmt.Fprintln(w, "\nNo connectors match.")
		return
	}
	rule := strings.Repeat("─", ruleWidth)
	header := func(title string) {
		fmt.Fprintf(w, "\n📁 %s\n%s\n%-18s %-10s %s\n%s\n", title, rule, "Name", "Type", "Description", rule)
	}
	if ranked {
		// Search results keep their ranking instead of being regrouped.
		header("SEARCH RESULTS")
		for _, e := range entries {
			printRow(w, e)
		}
		return
	}
	last := ""
	for _, e := range entries {
		if e.Category != last {
			header(strings.ToUpper(e.Category))
			last = e.Category
		}
		printRow(w, e)
	}
}

func printRow(w io.Writer, e *catalog.Entry) {
	desc := e.Description
	const maxDesc = 42
	if utf8.RuneCountInString(desc) > maxDesc {
		desc = string([]rune(desc)[:maxDesc-3]) + "..."
	}
	kind := strings.ToUpper(string(e.Kind[:1])) + string(e.Kind[1:])
	fmt.Fprintf(w, "%-18s %-10s %s\n", e.Name, kind, desc)
}
