package main

import (
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// flagHeader is a flag's line in --help: "-name" and at most one argument
// name, a type the flag package prints (string, int, duration, value…) or
// an upper-case placeholder. The flag package takes a backquoted word of a
// usage string as the argument name, so `go tool task build` in a usage
// printed "-dist go tool task build".
var flagHeader = regexp.MustCompile(`^  -[A-Za-z0-9][\w.-]*( (string|int|uint|int64|uint64|float|duration|value|[A-Z][A-Z0-9_]*))?$`)

// Every command's --help (deploy terraform's included) prints its
// synopsis and flags, each flag with a sensible argument name.
func TestEveryCommandsHelpReadsRight(t *testing.T) {
	helps := [][]string{{"deploy", "terraform", "--help"}, {"run", "source", "--help"}}
	for _, c := range commands() {
		helps = append(helps, []string{c.name, "--help"})
	}
	for _, args := range helps {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, errOut := cli(t, args...)
			if code != 0 || !strings.HasPrefix(out, "Usage: rivven-connect "+args[0]) {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			for _, line := range strings.Split(out, "\n") {
				if !strings.HasPrefix(line, "  -") {
					continue
				}
				header, _, _ := strings.Cut(line, "\t")
				if !flagHeader.MatchString(header) {
					t.Errorf("garbled flag line: %q", line)
				}
			}
			if strings.Contains(out, "`") {
				t.Errorf("a backquote in the help:\n%s", out)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, out, errOut := cli(t, args...)
		if code != 0 || !strings.HasPrefix(out, "rivven-connect ") || !strings.Contains(out, runtime.Version()) {
			t.Fatalf("%v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
		}
	}
	// What a go install'ed, VCS-stamped build says.
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/rivven/rivven-connect", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	want := "rivven-connect v1.2.3 (commit 0123456789ab, 2026-12-01T10:00:00Z, modified) go1.26.8 " + runtime.GOOS + "/" + runtime.GOARCH
	if got := versionLine(bi); got != want {
		t.Fatalf("%q\nwant %q", got, want)
	}
	if got := versionLine(nil); !strings.HasPrefix(got, "rivven-connect unknown go") {
		t.Fatalf("without build info: %q", got)
	}
}
