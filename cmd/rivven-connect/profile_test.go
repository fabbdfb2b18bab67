package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --cpuprofile and --memprofile write profiles pprof reads; a path that
// cannot be written is a usage error before anything runs.
func TestLocalWritesProfiles(t *testing.T) {
	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu.prof"), filepath.Join(dir, "mem.prof")
	code, _, errOut := cli(t, "local", "-c", writeFile(t, plain), "--max-events", "2000", "--quiet", "--cpuprofile", cpu, "--memprofile", mem)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, f := range []string{cpu, mem} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// pprof's format is a gzipped protocol buffer.
		if len(b) < 100 || b[0] != 0x1f || b[1] != 0x8b {
			t.Fatalf("%s is not a profile: %d bytes % x", filepath.Base(f), len(b), b[:min(len(b), 4)])
		}
	}
	code, _, errOut = cli(t, "local", "-c", writeFile(t, plain), "--max-events", "10", "--cpuprofile", filepath.Join(dir, "missing", "cpu.prof"))
	if code != exitUsage || !strings.Contains(errOut, "--cpuprofile") {
		t.Fatalf("unwritable profile: exit %d: %s", code, errOut)
	}
}
