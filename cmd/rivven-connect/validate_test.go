package main

import (
	"encoding/json"
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

// validate on a generated file with 30,000 unknown keys prints the first
// 100 problems, one line counting the rest and the total: 103 lines on
// stderr, whatever the number of problems.
func TestValidateHugeFileListsTheFirst100(t *testing.T) {
	var b strings.Builder
	b.WriteString("sources:\n  gen:\n    connector: datagen\n    topic: t\n    config:\n      pattern: orders\n")
	const n = 30000
	for i := range n {
		fmt.Fprintf(&b, "      unknown_%05d: %d\n", i, i)
	}
	b.WriteString("sinks:\n  out:\n    connector: stdout\n    topics: [t]\n")
	file := writeFile(t, b.String())
	code, _, errOut := cli(t, "validate", "-c", file)
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if code != exitUsage || len(lines) != 1+100+2 {
		t.Fatalf("exit %d, %d lines:\n%.2000s", code, len(lines), errOut)
	}
	if !strings.Contains(lines[1], ":7:7: sources.gen.config.unknown_00000: unknown key") ||
		!strings.Contains(lines[100], ":106:7: sources.gen.config.unknown_00099: unknown key") ||
		!strings.Contains(lines[101], "29900 more problem(s)") || strings.TrimSpace(lines[102]) != "30000 problem(s)" {
		t.Errorf("unexpected lines:\n%s\n%s\n%s\n%s", lines[1], lines[100], lines[101], lines[102])
	}

	code, out, _ := cli(t, "validate", "-c", file, "--json")
	var res struct {
		Valid    bool
		Count    int
		Problems []struct{ Line int }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitUsage {
		t.Fatalf("exit %d, %v", code, err)
	}
	if res.Valid || res.Count != n || len(res.Problems) != 100 || res.Problems[99].Line != 106 {
		t.Errorf("--json: valid %v, count %d, %d problems", res.Valid, res.Count, len(res.Problems))
	}
}

// A wrong type in a connector block does not hide the block's other
// problems: postgres-cdc's port "abc" and its slot name (checked by the
// connector's Validate) are both reported, with the rest.
func TestValidateReportsEveryProblemOfABlock(t *testing.T) {
	file := writeFile(t, `sources:
  pg:
    connector: postgres-cdc
    topic: t
    config:
      host: localhost
      port: "abc"
      database: test
      user: postgres
      password: ""
      publication_name: pub
      slot_name: "Bad-Slot!"
      snapshot: {mode: sometimes}
sinks:
  out:
    connector: stdout
    topics: [t]
    config: {format: jsonl, pretty: maybe}
`)
	code, _, errOut := cli(t, "validate", "-c", file)
	for _, want := range []string{
		`:7:13: sources.pg.config.port: expected an integer, got "abc"`,
		`:12:18: sources.pg.config.slot_name: "Bad-Slot!" is not a valid slot name`,
		`:13:24: sources.pg.config.snapshot.mode: "sometimes" is not allowed`,
		`:18:37: sinks.out.config.pretty: expected true or false`,
		"  4 problem(s)",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("missing %q (exit %d):\n%s", want, code, errOut)
		}
	}
}
