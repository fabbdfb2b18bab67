package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"

	"github.com/rivven/rivven-connect/shared/buildtag"
)

// plugin is one --with: a module path with a version, or a local
// directory that replaces it.
type plugin struct {
	Path    string // module path
	Version string // "" with Dir: the replaced module needs no version
	Dir     string // absolute; set for MODULE=DIR
}

// plugins is the repeatable --with flag.
type plugins []plugin

func (p *plugins) String() string {
	var s []string
	for _, x := range *p {
		s = append(s, x.spec())
	}
	return strings.Join(s, " ")
}

func (p plugin) spec() string {
	switch {
	case p.Dir != "":
		return p.Path + "=" + p.Dir
	case p.Version != "":
		return p.Path + "@" + p.Version
	}
	return p.Path
}

// Set parses MODULE@VERSION, MODULE or MODULE=DIR. For MODULE=DIR the
// module path must be the one DIR's go.mod declares.
func (p *plugins) Set(v string) error {
	var x plugin
	switch {
	case strings.Contains(v, "="):
		path, dir, _ := strings.Cut(v, "=")
		abs, err := filepath.Abs(dir)
		if err != nil {
			return err
		}
		declared, err := modulePathOf(abs)
		if err != nil {
			return fmt.Errorf("--with %s: %w", v, err)
		}
		if declared != path {
			return fmt.Errorf("--with %s: %s/go.mod declares module %s, not %s", v, dir, declared, path)
		}
		x = plugin{Path: path, Dir: abs}
	case strings.Contains(v, "@"):
		path, version, _ := strings.Cut(v, "@")
		if version == "" {
			return fmt.Errorf("--with %s: empty version", v)
		}
		x = plugin{Path: path, Version: version}
	default:
		x = plugin{Path: v, Version: "latest"}
	}
	if err := module.CheckImportPath(x.Path); err != nil {
		return fmt.Errorf("--with %s: %w", v, err)
	}
	if x.Path == modulePath || strings.HasPrefix(x.Path, modulePath+"/") {
		return fmt.Errorf("--with %s: that is this module; its connectors are linked already", v)
	}
	for _, o := range *p {
		if o.Path == x.Path {
			return fmt.Errorf("--with %s: module given twice", x.Path)
		}
	}
	*p = append(*p, x)
	return nil
}

// modulePathOf reads the module path from dir/go.mod.
func modulePathOf(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("no go.mod: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`), nil
		}
	}
	return "", errors.New("go.mod declares no module")
}

// customModule is the module path of the generated build.
const customModule = "rivven-connect.custom/build"

// buildWith builds the CLI with plugin modules linked in, the way xcaddy
// builds Caddy: in a temporary module that requires this module (the
// checkout around the working directory, else this binary's version) and
// each plugin, it writes the CLI's main package with one more file that
// imports the plugins' root packages (their init functions register
// their connectors in the catalog), tidies and builds it. With functions
// it then asks the built CLI which sinks and transforms the plugins
// registered and builds a function main for each, like functions/.
func buildWith(ctx context.Context, with plugins, tags buildtag.Set, out string, functions bool, stdout, stderr io.Writer) error {
	if _, err := exec.LookPath("go"); err != nil {
		return exitWith(exitFailed, fmt.Errorf("building needs the go command (Go 1.26+) on PATH: %w", err))
	}
	tmp, err := os.MkdirTemp("", "rivven-connect-build-")
	if err != nil {
		return exitWith(exitFailed, err)
	}
	defer os.RemoveAll(tmp)
	g := &generated{ctx: ctx, dir: tmp, stderr: stderr}
	src, err := g.module(with)
	if err != nil {
		return exitWith(exitFailed, err)
	}
	if err := g.cliMain(src, with); err != nil {
		return exitWith(exitFailed, err)
	}
	bin := filepath.Join(out, "rivven-connect")
	args := []string{"build", "-mod=mod", "-trimpath"}
	tagNote := "all built-in connectors"
	if tags != nil {
		args = append(args, "-tags", tags.String())
		tagNote = "-tags " + tags.String()
	}
	fmt.Fprintf(stderr, "building %s with %s (%s)\n", bin, with.String(), tagNote)
	if err := g.run(append(args, "-o", bin, "./cmd/rivven-connect")...); err != nil {
		return exitWith(exitFailed, err)
	}
	st, err := os.Stat(bin)
	if err != nil {
		return exitWith(exitFailed, err)
	}
	fmt.Fprintf(stdout, "✓ built %s (%.1f MiB) with %s\n", bin, float64(st.Size())/(1<<20), with.String())
	if !functions {
		return nil
	}
	comps, err := pluginComponents(ctx, bin, with)
	if err != nil {
		return exitWith(exitFailed, err)
	}
	if len(comps) == 0 {
		return exitWith(exitFailed, fmt.Errorf("--functions: the modules %s register no sink or transform", with.String()))
	}
	for _, c := range comps {
		if err := g.functionMain(src, c); err != nil {
			return exitWith(exitFailed, err)
		}
		fbin := filepath.Join(out, "functions", c.Kind+"-"+c.Name)
		if err := g.run("build", "-mod=mod", "-trimpath", "-o", fbin, "./functions/"+c.Kind+"/"+c.Name); err != nil {
			return exitWith(exitFailed, err)
		}
		fmt.Fprintf(stdout, "✓ built %s (the %s %s as a function)\n", fbin, c.Kind, c.Name)
	}
	return nil
}

// generated is the temporary module of a build --with.
type generated struct {
	ctx    context.Context
	dir    string
	stderr io.Writer
}

// run runs the go command in the generated module, outside any
// workspace.
func (g *generated) run(args ...string) error {
	cmd := exec.CommandContext(g.ctx, "go", args...)
	cmd.Dir = g.dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var msgs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &msgs, &msgs
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, msgs.String())
	}
	return nil
}

// module writes go.mod (with the requirements of this module's and the
// local plugins' go.mod, and a go.sum seeded from theirs, so that a warm
// module cache builds offline, with no module resolved anew) and returns
// the directory of this module's source.
func (g *generated) module(with plugins) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	var gomod strings.Builder
	fmt.Fprintf(&gomod, "// Code generated by rivven-connect build --with; DO NOT EDIT.\n\nmodule %s\n\ngo 1.26.8\n\n", customModule)
	var sums [][]byte
	src := moduleRoot(wd)
	requires := func(dir string) error {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err != nil {
			return err
		}
		f, err := modfile.ParseLax(filepath.Join(dir, "go.mod"), b, nil)
		if err != nil {
			return err
		}
		for _, r := range f.Require {
			if r.Mod.Path == modulePath || slices.ContainsFunc(with, func(p plugin) bool { return p.Path == r.Mod.Path }) {
				continue
			}
			fmt.Fprintf(&gomod, "require %s %s\n", r.Mod.Path, r.Mod.Version)
		}
		return nil
	}
	if src != "" {
		fmt.Fprintf(&gomod, "require %s v0.0.0-00010101000000-000000000000\n\nreplace %s => %s\n\n", modulePath, modulePath, src)
		if err := requires(src); err != nil {
			return "", err
		}
	}
	for _, p := range with {
		if p.Dir != "" {
			fmt.Fprintf(&gomod, "\nrequire %s v0.0.0-00010101000000-000000000000\n\nreplace %s => %s\n\n", p.Path, p.Path, p.Dir)
			if err := requires(p.Dir); err != nil {
				return "", err
			}
		}
	}
	if err := os.WriteFile(filepath.Join(g.dir, "go.mod"), []byte(gomod.String()), 0o644); err != nil {
		return "", err
	}
	if src != "" {
		sums = append(sums, readOrNil(filepath.Join(src, "go.sum")))
	} else {
		version := cliVersion()
		if version == "" {
			return "", fmt.Errorf("not inside a rivven-connect checkout, and this binary does not know which version of %s it is; run build inside a checkout", modulePath)
		}
		if err := g.run("get", modulePath+"@"+version); err != nil {
			return "", err
		}
		if src, err = g.moduleDir(modulePath); err != nil {
			return "", err
		}
	}
	for _, p := range with {
		if p.Dir != "" {
			sums = append(sums, readOrNil(filepath.Join(p.Dir, "go.sum")))
		}
	}
	if err := appendSums(filepath.Join(g.dir, "go.sum"), sums); err != nil {
		return "", err
	}
	for _, p := range with {
		if p.Dir == "" {
			if err := g.run("get", p.Path+"@"+p.Version); err != nil {
				return "", err
			}
		}
	}
	return src, nil
}

// moduleDir is where the go command keeps a required module's source.
func (g *generated) moduleDir(path string) (string, error) {
	cmd := exec.CommandContext(g.ctx, "go", "list", "-m", "-f", "{{.Dir}}", path)
	cmd.Dir = g.dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %v", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func readOrNil(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

// appendSums adds the distinct lines of sums to the go.sum at path.
func appendSums(path string, sums [][]byte) error {
	seen := map[string]bool{}
	var lines []string
	for _, b := range append([][]byte{readOrNil(path)}, sums...) {
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !seen[l] {
				seen[l] = true
				lines = append(lines, l)
			}
		}
	}
	slices.Sort(lines)
	return os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// cliMain writes the CLI's main package: this module's cmd/rivven-connect
// (its non-test files, build constraints kept) and plugins.go importing
// each plugin's root package.
func (g *generated) cliMain(src string, with plugins) error {
	from := filepath.Join(src, "cmd", "rivven-connect")
	to := filepath.Join(g.dir, "cmd", "rivven-connect")
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		return fmt.Errorf("the CLI's source: %w", err)
	}
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, n))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, n), b, 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(to, "zz_plugins.go"), pluginImports("main", with, nil), 0o644)
}

// pluginImports is a Go file of package pkg importing the plugins' root
// packages (and extra packages) for their side effects.
func pluginImports(pkg string, with plugins, extra []string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by rivven-connect build --with; DO NOT EDIT.\n\npackage %s\n\nimport (\n", pkg)
	for _, p := range with {
		fmt.Fprintf(&b, "\t_ %q\n", p.Path)
	}
	for _, x := range extra {
		fmt.Fprintf(&b, "\t_ %q\n", x)
	}
	b.WriteString(")\n")
	return b.Bytes()
}

// component is a sink or transform a plugin registered.
type component struct {
	Kind, Name, Package string
}

// pluginComponents asks the built CLI for the sinks and transforms whose
// package belongs to a plugin module.
func pluginComponents(ctx context.Context, bin string, with plugins) ([]component, error) {
	b, err := exec.CommandContext(ctx, bin, "connectors", "--json").Output()
	if err != nil {
		return nil, fmt.Errorf("%s connectors --json: %w", bin, err)
	}
	var entries []component
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, err
	}
	var out []component
	for _, e := range entries {
		if e.Kind == "source" {
			continue // sources run in the service, not as functions
		}
		for _, p := range with {
			if e.Package == p.Path || strings.HasPrefix(e.Package, p.Path+"/") {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// functionMain writes functions/<kind>/<name>/main.go: the host adapter
// with the plugin and, for a sink, the row transforms a sink function
// runs (the import list of this module's functions/internal/transforms).
func (g *generated) functionMain(src string, c component) error {
	var extra []string
	if c.Kind == "sink" {
		f, err := os.Open(filepath.Join(src, "functions", "internal", "transforms", "transforms.go"))
		if err != nil {
			return fmt.Errorf("the sink functions' transforms: %w", err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, `_ "`) {
				extra = append(extra, strings.Trim(strings.TrimPrefix(l, "_ "), `"`))
			}
		}
		f.Close()
	}
	dir := filepath.Join(g.dir, "functions", c.Kind, c.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b := pluginImports("main", plugins{{Path: c.Package}}, append(extra, "github.com/rivven/rivven-connect/shared/host"))
	b = bytes.Replace(b, []byte("\t_ \"github.com/rivven/rivven-connect/shared/host\"\n"), []byte("\t\"github.com/rivven/rivven-connect/shared/host\"\n"), 1)
	b = fmt.Appendf(b, "\nfunc main() { host.Main(host.Function{Kind: %q, Connector: %q}) }\n", c.Kind, c.Name)
	return os.WriteFile(filepath.Join(dir, "main.go"), b, 0o644)
}
