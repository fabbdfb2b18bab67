package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

func init() {
	register(command{"version", "Print the version, commit and Go version this binary was built from", runVersion})
}

func runVersion(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("version", "", stdout)
	if err := parse(fs, args); err != nil {
		return err
	}
	bi, _ := debug.ReadBuildInfo()
	fmt.Fprintln(stdout, versionLine(bi))
	return nil
}

// versionLine says what a binary was built from, as the Go toolchain
// recorded it: the module version (a tag when installed with go install
// …@version, "(devel)" for a build in a checkout), the VCS revision, its
// time and whether the tree had local changes (when built with VCS
// stamping, the default in a git checkout), and the Go version.
func versionLine(bi *debug.BuildInfo) string {
	var b strings.Builder
	b.WriteString("rivven-connect ")
	version, goVersion := "unknown", runtime.Version()
	var vcs []string
	if bi != nil {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
		var rev, at, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			vcs = append(vcs, "commit "+rev)
		}
		if at != "" {
			vcs = append(vcs, at)
		}
		if modified == "true" {
			vcs = append(vcs, "modified")
		}
	}
	b.WriteString(version)
	if len(vcs) > 0 {
		b.WriteString(" (" + strings.Join(vcs, ", ") + ")")
	}
	b.WriteString(" " + goVersion + " " + runtime.GOOS + "/" + runtime.GOARCH)
	return b.String()
}

// cliVersion is the released version this binary is (v1.2.0, as go install
// …@version records it), or "" for a build from a checkout or one whose
// version is unknown. build and deploy fetch that version of the sources
// and modules when they run outside a checkout.
func cliVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	v := bi.Main.Version
	if bi.Main.Path != modulePath {
		v = ""
		// A build --with: this module is a dependency of the generated one.
		for _, d := range bi.Deps {
			if d.Path == modulePath && d.Replace == nil {
				v = d.Version
			}
		}
	}
	if v == "" || v == "(devel)" {
		return ""
	}
	return v
}
