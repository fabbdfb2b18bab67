package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/shared/buildtag"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/secrets"
	"github.com/rivven/rivven-connect/shared/spec"
	"github.com/rivven/rivven-connect/shared/transport"
)

func init() {
	register(command{"build", "Build a CLI that links only what a pipeline uses, or with connectors of other modules (build [-c FILE] [--with MODULE[@VERSION|=DIR]]... [--out DIR])", runBuild})
}

// modulePath is the module the CLI is built from.
const modulePath = "github.com/rivven/rivven-connect"

// runBuild derives the build tags a pipeline needs — its sources, sinks and
// transforms, and the transport of its broker block — and builds the CLI
// with -tags custom,<those>: the first run of a pipeline then compiles and
// downloads only the clients it uses, not every cloud SDK. Inside a
// checkout it builds the checkout; elsewhere it installs this binary's own
// version of the module with the go command.
//
// With --with (see build_with.go) it builds, as xcaddy builds Caddy, a
// CLI with the connectors of other Go modules linked in: all built-in
// connectors, or with -c only those the pipeline names.
func runBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("build", "[-c FILE] [--with MODULE[@VERSION|=DIR]]... [--functions] [--out DIR] [--tags]", stdout)
	file := fs.String("c", "", "pipeline file: link only the connectors, transforms and transport it names (required without --with)")
	out := fs.String("out", "bin", "directory to write the binary to, as rivven-connect (created if missing)")
	onlyTags := fs.Bool("tags", false, "print the -tags value the pipeline needs and build nothing")
	var with plugins
	fs.Var(&with, "with", "a Go module whose connectors to link in: MODULE@VERSION, MODULE (latest) or MODULE=DIR (a local checkout, for development); repeatable")
	funcs := fs.Bool("functions", false, "with --with: also build one function binary per sink and transform the modules register, into OUT/functions/")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *file == "" && len(with) == 0 {
		return exitWith(exitUsage, errors.New("-c FILE is required (or --with MODULE)"))
	}
	if *funcs && len(with) == 0 {
		return exitWith(exitUsage, errors.New("--functions needs --with MODULE"))
	}
	var tags buildtag.Set
	if *file != "" {
		raw, err := os.ReadFile(*file)
		if err != nil {
			return exitWith(exitUsage, err)
		}
		tags, err = pipelineTags(raw, len(with) > 0)
		if ps := config.Problems(err); ps != nil {
			return exitWith(exitUsage, fmt.Errorf("%s is invalid:\n%s", *file, formatProblems(*file, ps)))
		}
		if err != nil {
			return exitWith(exitUsage, err)
		}
	}
	if *onlyTags {
		fmt.Fprintln(stdout, tags.String())
		return nil
	}
	absOut, err := filepath.Abs(*out)
	if err != nil {
		return exitWith(exitUsage, err)
	}
	if err := os.MkdirAll(absOut, 0o755); err != nil {
		return exitWith(exitFailed, err)
	}
	if len(with) > 0 {
		return buildWith(ctx, with, tags, absOut, *funcs, stdout, stderr)
	}
	bin := filepath.Join(absOut, "rivven-connect")
	cmd, from, err := buildCommand(ctx, tags.String(), absOut)
	if err != nil {
		return exitWith(exitUsage, err)
	}
	fmt.Fprintf(stderr, "building %s from %s with -tags %s\n", bin, from, tags.String())
	var msgs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &msgs, &msgs
	if err := cmd.Run(); err != nil {
		return exitWith(exitFailed, fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, msgs.String()))
	}
	st, err := os.Stat(bin)
	if err != nil {
		return exitWith(exitFailed, err)
	}
	fmt.Fprintf(stdout, "✓ built %s (%.1f MiB), linking: %s\n", bin, float64(st.Size())/(1<<20), strings.Join(tags.Sorted(), " "))
	return nil
}

// pipelineTags is the tag set that links every connector and transform a
// pipeline file names (enabled or not: validation checks them all) and the
// transport of its broker block. The file is read for its structure only,
// against the table of every connector there is: this binary may itself be
// a custom build that links none of them, and ${VAR}s need not be set to
// know which connectors a file names. A name no build has is a problem at
// its line, with a did-you-mean, unless plugins may provide it (build
// --with): then it links no tag and the built CLI checks it.
func pipelineTags(raw []byte, plugins bool) (buildtag.Set, error) {
	keep := func(name string) (string, bool) { return "${" + name + "}", true }
	p, err := config.Parse(raw, everyComponent{plugins}, config.Options{Env: keep})
	if err != nil {
		return nil, err
	}
	tags := buildtag.Set{}
	add := func(kind, name string) {
		if c, ok := buildtag.Lookup(kind, name); ok {
			tags.Add(c.Tag())
		}
	}
	transforms := func(ts config.Transforms) {
		for _, t := range ts {
			add("transform", t.Kind())
		}
	}
	for _, s := range p.Sources {
		add("source", s.Connector)
		transforms(s.Transforms)
	}
	for _, s := range p.Sinks {
		add("sink", s.Connector)
		transforms(s.Transforms)
	}
	if p.Broker != nil {
		tags.Add(buildtag.Transport(transport.Name(p.Broker)))
	}
	// The secret stores its references are read from.
	r := pipeline.NewResolver(p)
	for path, n := range pipeline.SecretNodes(p) {
		for _, l := range secrets.Refs(n, path) {
			if tag := secrets.Tag(r.ProviderFor(l.Ref)); tag != "" {
				tags.Add(tag)
			}
		}
	}
	return tags, nil
}

// everyComponent is a config.Catalog that knows every component by name
// (linked or not) and checks no config block: what build needs to read a
// pipeline's structure. With plugins it takes any name.
type everyComponent struct{ plugins bool }

func (c everyComponent) CheckConfig(kind, name string, _ *yaml.Node, _ string) ([]spec.Problem, bool) {
	_, ok := buildtag.Lookup(kind, name)
	return nil, ok || c.plugins
}

func (everyComponent) Names(kind string) []string { return buildtag.Names(kind) }

// buildCommand is the go command that builds the CLI into dir: go build in
// the checkout around the working directory, else go install of the
// version this binary was built from.
func buildCommand(ctx context.Context, tags, dir string) (*exec.Cmd, string, error) {
	if _, err := exec.LookPath("go"); err != nil {
		return nil, "", fmt.Errorf("building needs the go command (Go 1.26+) on PATH: %w", err)
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, "", err
	}
	if root := moduleRoot(wd); root != "" {
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags", tags, "-o", filepath.Join(dir, "rivven-connect"), "./cmd/rivven-connect")
		cmd.Dir = root
		return cmd, "the checkout " + root, nil
	}
	version := cliVersion()
	if version == "" {
		return nil, "", fmt.Errorf("not inside a rivven-connect checkout, and this binary does not know which version of %s it is; run build inside a checkout", modulePath)
	}
	cmd := exec.CommandContext(ctx, "go", "install", "-trimpath", "-tags", tags, modulePath+"/cmd/rivven-connect@"+version)
	cmd.Env = append(os.Environ(), "GOBIN="+dir)
	return cmd, modulePath + "@" + version, nil
}

// moduleRoot is the nearest directory at or above dir whose go.mod
// declares this module, or "".
func moduleRoot(dir string) string {
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if f := strings.Fields(line); len(f) == 2 && f[0] == "module" && f[1] == modulePath {
					return dir
				}
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}
