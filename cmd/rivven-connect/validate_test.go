package main

import (
	"fmt"
	"strings"
	"testing"
)

// aliasPipeline is a datagen → stdout pipeline whose sink inserts a static
// field built from YAML aliases: levels lists of width items, each level
// naming the one before width times.
func aliasPipeline(levels, width int) string {
	var b strings.Builder
	b.WriteString(`sources:
  gen:
    connector: datagen
    topic: t
    config: {pattern: orders, cdc_mode: true, events_per_second: 0, seed: 1}
sinks:
  out:
    connector: stdout
    topics: [t]
    config: {format: jsonl}
    transforms:
      - type: InsertField
        config:
          static:
`)
	fmt.Fprintf(&b, "            l0: &l0 [%s]\n", strings.TrimSuffix(strings.Repeat("x, ", width), ", "))
	for i := 1; i < levels; i++ {
		fmt.Fprintf(&b, "            l%d: &l%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), width), ", "))
	}
	return b.String()
}

// An alias bomb inside InsertField's static values (decoded only when the
// transform is built) gets one answer from every command that loads a
// pipeline: validate, check, local, run, invoke (the Lambda and Cloud Run
// cold start) and deploy all refuse it as invalid, at the same line.
func TestAliasBombRefusedByEveryCommand(t *testing.T) {
	file := writeFile(t, aliasPipeline(9, 9))
	same := func(text string) bool {
		return strings.Contains(text, "sinks.out.transforms[0].config.static.l8[0]") &&
			strings.Contains(text, "excessive YAML aliasing") &&
			(strings.Contains(text, ":23:22: ") || strings.Contains(text, "(line 23:22)"))
	}
	for _, args := range [][]string{
		{"validate"},
		{"validate", "--json"},
		{"check"},
		{"local", "--max-events", "1"},
		{"run", "sink", "out"},
		{"run", "source", "gen"},
		{"discover"},
		{"invoke", "--function", "sink/stdout", "--event", "../../samples/events/sqs.json"},
		{"deploy", "terraform", "--cloud", "aws", "--out", t.TempDir()},
	} {
		code, out, errOut := cli(t, append(args, "-c", file)...)
		text := out + errOut
		if args[0] == "validate" && len(args) == 2 {
			if code != exitUsage || !strings.Contains(text, `"line": 23`) || !strings.Contains(text, "excessive YAML aliasing") {
				t.Errorf("%v: exit %d\n%s", args, code, text)
			}
			continue
		}
		if code != exitUsage || !same(text) {
			t.Errorf("%v: exit %d, want %d and the aliasing problem at line 23\n%s", args, code, exitUsage, text)
		}
	}
}

// What the loader accepts, every command runs: 1,500 static values behind
// one alias are within the yaml package's limits for the file, though a
// decode of the one aliased value alone would not be (99.9% aliases).
func TestAliasesAcceptedByValidateRunInLocal(t *testing.T) {
	file := writeFile(t, aliasPipeline(1, 1500)+"            copy: *l0\n")
	if code, out, errOut := cli(t, "validate", "-c", file); code != 0 {
		t.Fatalf("validate: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut := cli(t, "local", "-c", file, "--max-events", "1", "--quiet")
	if code != 0 {
		t.Fatalf("local: exit %d\n%s", code, errOut)
	}
	if !strings.Contains(out, `"copy":["x","x",`) {
		t.Errorf("the aliased static value was not inserted:\n%.300s", out)
	}
}
