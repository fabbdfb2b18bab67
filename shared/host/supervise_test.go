package host

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// TestMayReadSecrets covers the cold-start decision of Main: only a
// pipeline that holds a reference (or one that cannot be told cheaply)
// makes the function run as a supervised child of itself.
func TestMayReadSecrets(t *testing.T) {
	withRef := strings.Replace(testPipeline, "    connector: s3-not-linked-here\n",
		"    connector: s3-not-linked-here\n    config: {secret_access_key: \"vault:secret/data/lake#key\"}\n", 1)
	if withRef == testPipeline {
		t.Fatal("the reference was not added")
	}
	file := filepath.Join(t.TempDir(), "pipeline.yaml")
	if err := os.WriteFile(file, []byte(withRef), 0o644); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(t.TempDir(), "pipeline.yaml")
	if err := os.WriteFile(plain, []byte(testPipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"inline without references (components of other functions included)", map[string]string{"RIVVEN_PIPELINE": testPipeline}, false},
		{"file without references", map[string]string{"RIVVEN_PIPELINE": plain}, false},
		{"inline with a reference", map[string]string{"RIVVEN_PIPELINE": withRef}, true},
		{"file with a reference", map[string]string{"RIVVEN_PIPELINE": file}, true},
		{"a reference through ${VAR}", map[string]string{
			"RIVVEN_PIPELINE": strings.Replace(withRef, `"vault:secret/data/lake#key"`, `"${LAKE_KEY}"`, 1),
			"LAKE_KEY":        "vault:secret/data/lake#key"}, true},
		{"a plain value through ${VAR}", map[string]string{
			"RIVVEN_PIPELINE": strings.Replace(withRef, `"vault:secret/data/lake#key"`, `"${LAKE_KEY}"`, 1),
			"LAKE_KEY":        "plain"}, false},
		{"inline YAML quoting a URL", map[string]string{"RIVVEN_PIPELINE": testPipeline + "# see https://example.com\n"}, false},
		{"remote: not fetched twice", map[string]string{"RIVVEN_PIPELINE": "s3://bucket/pipeline.yaml"}, true},
		{"a file that does not load", map[string]string{"RIVVEN_PIPELINE": filepath.Join(t.TempDir(), "missing.yaml")}, true},
		{"unset: cold start fails before any secret", map[string]string{}, false},
	} {
		got, parsed := mayReadSecrets(envOf(c.env))
		if got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
		// What was parsed is handed to Init only when the function runs
		// alone; a supervised child parses for itself.
		if want := !got && c.env["RIVVEN_PIPELINE"] != ""; (parsed != nil) != want {
			t.Errorf("%s: parsed pipeline kept: %v, want %v", c.name, parsed != nil, want)
		}
	}
}

// TestInitTakesMainsParse: the pipeline Main parsed to decide on
// supervision is the one Init serves, so a cold start reads and parses
// it once (the file is gone by the time Init runs).
func TestInitTakesMainsParse(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pipeline.yaml")
	if err := os.WriteFile(file, []byte(testPipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RIVVEN_PIPELINE", file)
	t.Setenv("REDIS_URL", "")
	may, parsed := mayReadSecrets(os.LookupEnv)
	if may || parsed == nil {
		t.Fatalf("mayReadSecrets: %v, %v", may, parsed)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	rt, err := Init(context.Background(), Function{Kind: "sink", Connector: "test-collect"}, Options{Log: io.Discard, parsed: parsed})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(context.Background())
	if rt.Pipeline != parsed.p || rt.Pipeline.Path != file || rt.Component != "sinks.out" {
		t.Errorf("Init did not serve the parsed pipeline: %p %q %s", rt.Pipeline, rt.Pipeline.Path, rt.Component)
	}
}

// TestFirstGCWaitsForTheFirstBatch: Main raises GOGC for the cold start
// and the host puts it back; a GOGC the deployment set is left alone.
func TestFirstGCWaitsForTheFirstBatch(t *testing.T) {
	if v, set := os.LookupEnv("GOGC"); set {
		t.Setenv("GOGC", v) // restored after the test
		os.Unsetenv("GOGC")
	}
	prev := debug.SetGCPercent(80)
	defer debug.SetGCPercent(prev)
	prevLimit := debug.SetMemoryLimit(1 << 40)
	defer debug.SetMemoryLimit(prevLimit)
	g := deferFirstGC()
	if got := debug.SetGCPercent(coldStartGCPercent); got != coldStartGCPercent {
		t.Errorf("GOGC during the cold start: %d, want %d", got, coldStartGCPercent)
	}
	if got := debug.SetMemoryLimit(-1); got != coldStartHeapLimit {
		t.Errorf("memory limit during the cold start: %d, want %d", got, coldStartHeapLimit)
	}
	g.restore()
	g.restore()
	if got := debug.SetGCPercent(80); got != 80 {
		t.Errorf("GOGC after the first batch: %d, want 80", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 1<<40 {
		t.Errorf("memory limit after the first batch: %d, want %d", got, int64(1<<40))
	}
	t.Setenv("GOGC", "80")
	if g := deferFirstGC(); g != nil {
		t.Error("a GOGC the deployment set was overridden")
	}
	if got := debug.SetGCPercent(80); got != 80 {
		t.Errorf("GOGC with GOGC=80 set: %d", got)
	}
}
