package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/testenv"
)

func TestBuildDerivesTags(t *testing.T) {
	code, out, errOut := cli(t, "build", "-c", quickstart, "--tags")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if want := "custom,sinks.stdout,sources.datagen,transforms.filter,transforms.mask_field\n"; out != want {
		t.Errorf("quickstart tags = %q, want %q", out, want)
	}

	// Aliases and snake_case spellings, a disabled sink (validation still
	// checks it, so the binary must know it), a ${VAR} nobody set, and the
	// broker's transport.
	p := writeFile(t, `
broker:
  transport: sqs
  sqs: {region: "${REGION}"}
sources:
  pg:
    connector: postgresql-cdc
    topic: cdc.orders
    config: {host: db, database: shop, user: "${PGUSER}"}
    transforms:
      - type: extract_new_record_state
sinks:
  out:
    connector: kafka-sink
    topics: [cdc.orders]
    config: {topic: orders, bootstrap_servers: ["${KAFKA}"]}
    transforms:
      unwrap: {transform: Unwrap, config: {field: after}}
  lake:
    connector: s3
    enabled: false
    topics: [cdc.orders]
`)
	code, out, errOut = cli(t, "build", "-c", p, "--tags")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if want := "custom,sinks.kafka,sinks.s3,sources.postgres_cdc,transforms.extract_new_record_state,transforms.unwrap,transports.sqs\n"; out != want {
		t.Errorf("tags = %q, want %q", out, want)
	}

	// A name no build has: its line and a did-you-mean.
	code, _, errOut = cli(t, "build", "-c", writeFile(t, "sources:\n  pg:\n    connector: postgress-cdc\n    topic: t\n"), "--tags")
	if code != exitUsage || !strings.Contains(errOut, `:3:16: sources.pg.connector: unknown source connector "postgress-cdc" (did you mean "postgres-cdc"?)`) {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

// TestBuildQuickstartCLI builds the quickstart's CLI as `go tool task
// local` does and checks that it holds datagen, MaskField, Filter and
// stdout and nothing else, runs the quickstart, and names the tag a
// pipeline it cannot run needs.
func TestBuildQuickstartCLI(t *testing.T) {
	if testing.Short() {
		testenv.Unavailable(t, "-short: this test builds a CLI")
	}
	dir := t.TempDir()
	code, out, errOut := cli(t, "build", "-c", quickstart, "--out", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	bin := filepath.Join(dir, "rivven-connect")
	if !strings.Contains(out, "✓ built "+bin) || !strings.Contains(out, "linking: sinks.stdout sources.datagen transforms.filter transforms.mask_field") {
		t.Errorf("stdout %q", out)
	}
	checkHolds(t, bin, []string{"sink stdout", "source datagen", "transform Filter", "transform MaskField"})

	run := exec.Command(bin, "local", "-c", quickstart, "--max-events", "50", "--quiet")
	stdout, err := run.Output()
	if err != nil {
		t.Fatalf("quickstart with the built CLI: %v\n%s", err, stderrOf(err))
	}
	checkEvents(t, stdout)

	kafka := writeFile(t, "sources:\n  o: {connector: datagen, topic: t, config: {pattern: orders}}\nsinks:\n  k: {connector: kafka-sink, topics: [t], config: {topic: t, bootstrap_servers: [\"h:9092\"]}}\n")
	b, err := exec.Command(bin, "validate", "-c", kafka).CombinedOutput()
	if err == nil || !strings.Contains(string(b), `sinks.k.connector: sink "kafka-sink" is not linked into this binary (it was built with -tags custom without sinks.kafka); build one that has it with `+"`rivven-connect build -c PIPELINE`") {
		t.Errorf("validate with a sink the build lacks: %v\n%s", err, b)
	}
	withBroker := writeFile(t, "broker: {transport: kafka, bootstrap_servers: [\"127.0.0.1:1\"]}\nsources:\n  o: {connector: datagen, topic: t, config: {pattern: orders}}\n")
	// run needs a Redis before it opens the broker: an in-process one.
	mr := miniredis.RunT(t)
	runSource := exec.Command(bin, "run", "source", "o", "-c", withBroker)
	runSource.Env = append(os.Environ(), "REDIS_URL=redis://"+mr.Addr())
	b, err = runSource.CombinedOutput()
	if err == nil || !strings.Contains(string(b), "broker.transport: kafka is not linked into this binary (linked: none; the tag transports.kafka links it)") {
		t.Errorf("run with a transport the build lacks: %v\n%s", err, b)
	}
}

// TestREADMEBuildExample runs the README's go build -tags example as
// written (only the output path moved to a temporary directory) and the
// quickstart with the binary it builds.
func TestREADMEBuildExample(t *testing.T) {
	if testing.Short() {
		testenv.Unavailable(t, "-short: this test builds a CLI")
	}
	var cmdline string
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "go build -tags custom,") {
			cmdline = sc.Text()
		}
	}
	if cmdline == "" {
		t.Fatal("the README shows no go build -tags custom,… command")
	}
	args := strings.Fields(cmdline)
	i := slices.Index(args, "-o")
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("%q: no -o", cmdline)
	}
	bin := filepath.Join(t.TempDir(), "rivven-connect")
	args[i+1] = bin
	build := exec.Command(args[0], args[1:]...)
	build.Dir = "../.."
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmdline, err, b)
	}
	stdout, err := exec.Command(bin, "local", "-c", quickstart, "--max-events", "50", "--quiet").Output()
	if err != nil {
		t.Fatalf("quickstart with the README's build: %v\n%s", err, stderrOf(err))
	}
	checkEvents(t, stdout)
	checkHolds(t, bin, []string{"sink stdout", "source datagen", "transform Filter", "transform MaskField"})
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// checkHolds compares what a binary's catalog lists with want ("kind name").
func checkHolds(t *testing.T, bin string, want []string) {
	t.Helper()
	b, err := exec.Command(bin, "connectors", "--json").Output()
	if err != nil {
		t.Fatalf("connectors --json: %v", err)
	}
	var entries []struct{ Name, Kind string }
	if err := json.Unmarshal(b, &entries); err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, e := range entries {
		have = append(have, e.Kind+" "+e.Name)
	}
	slices.Sort(have)
	if !slices.Equal(have, want) {
		t.Errorf("the binary holds %v, want %v", have, want)
	}
}

// checkEvents checks that the quickstart printed whole events, masked.
func checkEvents(t *testing.T, stdout []byte) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(string(stdout)), "\n")
	if len(lines) == 0 || lines[0] == "" {
		t.Fatal("the quickstart printed nothing")
	}
	for _, l := range lines {
		if _, err := events.Unmarshal([]byte(l)); err != nil {
			t.Fatalf("stdout line is not an event: %v: %s", err, l)
		}
		if !strings.Contains(l, `"customer_id":"*`) {
			t.Fatalf("customer_id is not masked: %s", l)
		}
	}
}

// TestBuildWithLocalPlugin builds, as a user developing a connector
// would, a CLI and a transform function with the example module of
// examples/plugin linked in from its directory, offline (the module
// cache is warm), and runs a pipeline of its source and transform in
// local.
func TestBuildWithLocalPlugin(t *testing.T) {
	if testing.Short() {
		testenv.Unavailable(t, "-short: this test builds a CLI")
	}
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOFLAGS", "-mod=mod")
	pipeline := writeFile(t, `
sources:
  counter:
    connector: acme-counter
    topic: counted
    config: {count: 30, batch_size: 4, key: "${COUNTER_KEY}"}
    transforms:
      - type: acme-upper
        config: {fields: [name]}
sinks:
  out:
    connector: stdout
    topics: [counted]
    config: {format: json}
`)
	dir := t.TempDir()
	code, out, errOut := cli(t, "build", "-c", pipeline, "--with", "example.com/rivven-counter=../../examples/plugin", "--functions", "--out", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	bin := filepath.Join(dir, "rivven-connect")
	if !strings.Contains(out, "✓ built "+bin) || !strings.Contains(out, "functions/transform-acme-upper (the transform acme-upper as a function)") {
		t.Errorf("stdout %q", out)
	}
	// The pipeline's built-in sink and the module's components, nothing else.
	checkHolds(t, bin, []string{"sink stdout", "source acme-counter", "transform acme-upper"})

	run := exec.Command(bin, "local", "-c", pipeline, "--max-events", "30", "--quiet")
	run.Env = append(os.Environ(), "COUNTER_KEY=k")
	stdout, err := run.Output()
	if err != nil {
		t.Fatalf("local with the plugin: %v\n%s", err, stderrOf(err))
	}
	lines := strings.Split(strings.TrimSpace(string(stdout)), "\n")
	if len(lines) != 30 {
		t.Fatalf("%d events, want 30:\n%s", len(lines), stdout)
	}
	e, err := events.Unmarshal([]byte(lines[2]))
	if err != nil {
		t.Fatal(err)
	}
	row, err := e.Row()
	if err != nil {
		t.Fatal(err)
	}
	// HMAC-SHA256 of "3" under "k", computed with openssl dgst -hmac.
	if row["name"] != "ITEM-3" || row["signature"] != "73ad098009fda9c640365e02d5f49a48e48249d3ea32e9fbca172ce656802ec2" {
		t.Errorf("third event %s", lines[2])
	}
	if _, err := os.Stat(filepath.Join(dir, "functions", "transform-acme-upper")); err != nil {
		t.Errorf("the function binary: %v", err)
	}

	// A module path that is not the directory's.
	code, _, errOut = cli(t, "build", "--with", "example.com/other=../../examples/plugin", "--out", dir)
	if code != exitUsage || !strings.Contains(errOut, "declares module example.com/rivven-counter, not example.com/other") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}
