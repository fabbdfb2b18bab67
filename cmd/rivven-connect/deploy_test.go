package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The quickstart deploys to GCP with nothing left that keeps it from
// starting: the root enables the APIs it uses and its pipeline copy serves
// the health port Cloud Run waits for; no note says otherwise.
func TestDeployQuickstartToGCP(t *testing.T) {
	out := t.TempDir()
	code, stdout, stderr := cli(t, "deploy", "terraform", "-c", samples+"pipelines/quickstart.yaml", "--cloud", "gcp", "--out", out)
	if code != 0 || strings.Contains(stdout+stderr, "note:") {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	main, err := os.ReadFile(filepath.Join(out, "main.tf"))
	if err != nil {
		t.Fatal(err)
	}
	copy, err := os.ReadFile(filepath.Join(out, "pipeline.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(main), `resource "google_project_service" "apis"`) || !strings.Contains(string(copy), "health: {enabled: true}") {
		t.Fatalf("main.tf:\n%s\npipeline.yaml:\n%s", main, copy)
	}
	// A pipeline that turns the health port off is refused with the fix.
	off := writeFile(t, "settings:\n  health:\n    enabled: false\nsources:\n  o: {connector: datagen, topic: orders, config: {pattern: orders}}\nsinks:\n  a: {connector: stdout, topics: [orders]}\n")
	code, _, stderr = cli(t, "deploy", "terraform", "-c", off, "--cloud", "gcp", "--out", t.TempDir())
	if code != exitUsage || !strings.Contains(stderr, "set settings.health.enabled: true") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}
