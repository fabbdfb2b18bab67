package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every command the README's CLI table shows exists, with every flag it
// shows: the table is what users copy from.
func TestREADMECommandTableMatchesTheCLI(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `rivven-connect ([^`]+)` \\|")
	flagRe := regexp.MustCompile(`(?:^| |\[)--?([a-z][a-z-]*)`)
	rows := row.FindAllStringSubmatch(string(readme), -1)
	if len(rows) < 8 {
		t.Fatalf("found %d commands in the README's CLI table", len(rows))
	}
	for _, r := range rows {
		words := strings.Fields(strings.ReplaceAll(r[1], `\|`, "|"))
		args := []string{words[0]}
		// Commands with a subcommand word (run source|sink, deploy
		// terraform) show their help after it.
		if len(words) > 1 && regexp.MustCompile(`^[a-z]+(\|[a-z]+)?$`).MatchString(words[1]) {
			args = append(args, strings.Split(words[1], "|")[0])
		}
		code, out, errOut := cli(t, append(args, "--help")...)
		if code != exitOK {
			t.Errorf("rivven-connect %s --help: exit %d: %s", strings.Join(args, " "), code, errOut)
			continue
		}
		for _, f := range flagRe.FindAllStringSubmatch(r[1], -1) {
			if !regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(f[1]) + `\b`).MatchString(out) {
				t.Errorf("the README shows `rivven-connect %s` with -%s, which its --help does not list:\n%s", r[1], f[1], out)
			}
		}
	}
}

// Every `go test`, `go run` and `go tool task` command in the repository's
// READMEs names a package that exists, a benchmark or test that the
// package has, and a task the Taskfile defines, so that a command copied
// from the docs runs something.
func TestREADMEGoCommandsNameWhatExists(t *testing.T) {
	root := "../.."
	taskfile, err := os.ReadFile(filepath.Join(root, "Taskfile.yml"))
	if err != nil {
		t.Fatal(err)
	}
	goCmd := regexp.MustCompile("(?:^|[`\\s])go (test|run|tool task) ([^`\\n]*)")
	var readmes []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == ".git" || d.Name() == "dist" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if d.Name() == "README.md" {
			readmes = append(readmes, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, readme := range readmes {
		body, err := os.ReadFile(readme)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range goCmd.FindAllStringSubmatch(string(body), -1) {
			where := strings.TrimPrefix(readme, root+"/") + ": go " + m[1] + " " + m[2]
			args := strings.Fields(m[2])
			if m[1] == "tool task" {
				if len(args) > 0 && !strings.Contains(string(taskfile), "\n  "+args[0]+":") {
					t.Errorf("%s: the Taskfile has no task %q", where, args[0])
				}
				checked++
				continue
			}
			var pkg, bench, run string
			for i, a := range args {
				switch {
				case strings.HasPrefix(a, "./"):
					pkg = strings.TrimSuffix(strings.TrimSuffix(a, "..."), "/")
				case a == "-bench" && i+1 < len(args):
					bench = strings.Trim(args[i+1], `'"`)
				case a == "-run" && i+1 < len(args):
					run = strings.Trim(args[i+1], `'"`)
				}
			}
			if pkg == "" {
				continue // a command without a package path (e.g. prose)
			}
			src := goSources(t, filepath.Join(root, pkg))
			if src == "" {
				t.Errorf("%s: no Go package at %s", where, pkg)
				continue
			}
			checked++
			if bench != "" && bench != "." && !regexp.MustCompile(`func \w*`+regexp.QuoteMeta(bench)).MatchString(src) {
				t.Errorf("%s: %s has no benchmark matching %q", where, pkg, bench)
			}
			if run != "" && run != "^$" && run != "XXX" && !regexp.MustCompile(`func \w*`+regexp.QuoteMeta(strings.Trim(run, "^$"))).MatchString(src) {
				t.Errorf("%s: %s has no test matching %q", where, pkg, run)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("checked only %d commands in %d READMEs", checked, len(readmes))
	}
}

// goSources concatenates the Go files of a directory ("" if it has none).
func goSources(t *testing.T, dir string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	var b strings.Builder
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(src)
	}
	return b.String()
}
