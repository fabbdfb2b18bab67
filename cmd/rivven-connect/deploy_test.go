package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/shared/deploy"
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

// Module sources: inside a checkout a path relative to the root (the
// generated README says it only works there); outside one, an address —
// --module-source, or the repository at the CLI's own version — and a
// build that knows no version asks for --module-source instead of writing
// a path that leads nowhere.
func TestDeployModuleSource(t *testing.T) {
	pipeline, err := filepath.Abs(samples + "pipelines/quickstart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if code, _, stderr := cli(t, "deploy", "terraform", "-c", pipeline, "--cloud", "aws", "--out", out); code != 0 {
		t.Fatalf("in the checkout: exit %d: %s", code, stderr)
	}
	readme, _ := os.ReadFile(filepath.Join(out, "README.md"))
	main, _ := os.ReadFile(filepath.Join(out, "main.tf"))
	if !strings.Contains(string(readme), "the rivven-connect checkout") || !strings.Contains(string(main), `source = "../`) {
		t.Fatalf("in the checkout:\nREADME.md:\n%s\nmain.tf:\n%s", readme, main)
	}

	t.Chdir(t.TempDir()) // an installed binary, run outside any checkout
	code, _, stderr := cli(t, "deploy", "terraform", "-c", pipeline, "--cloud", "aws", "--out", t.TempDir())
	if code != exitUsage || !strings.Contains(stderr, "--module-source") {
		t.Fatalf("outside a checkout, no version: exit %d: %s", code, stderr)
	}
	addr := "git::https://example.com/rivven-connect.git//infra/terraform/modules?ref=v9.9.9"
	out = t.TempDir()
	if code, _, stderr := cli(t, "deploy", "terraform", "-c", pipeline, "--cloud", "aws", "--out", out, "--module-source", addr); code != 0 {
		t.Fatalf("--module-source: exit %d: %s", code, stderr)
	}
	readme, _ = os.ReadFile(filepath.Join(out, "README.md"))
	main, _ = os.ReadFile(filepath.Join(out, "main.tf"))
	if !strings.Contains(string(readme), "given with --module-source") ||
		!strings.Contains(string(main), `"git::https://example.com/rivven-connect.git//infra/terraform/modules/aws/state?ref=v9.9.9"`) {
		t.Fatalf("--module-source:\nREADME.md:\n%s\nmain.tf:\n%s", readme, main)
	}
	if got := deploy.RemoteModules("v1.2.0"); got != "git::https://github.com/rivven/rivven-connect.git//infra/terraform/modules?ref=v1.2.0" {
		t.Errorf("RemoteModules = %s", got)
	}
}
