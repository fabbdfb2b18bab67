package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Paths seen from this package's directory.
const (
	terraformDir = "../../infra/terraform"
	modulesDir   = terraformDir + "/modules"
	examplesDir  = terraformDir + "/examples"
)

// update regenerates the module READMEs and the example deployments.
var update = os.Getenv("UPDATE_TERRAFORM") == "1"

var moduleNames = []string{
	"aws/sink-function", "aws/source-service", "aws/topic", "aws/state",
	"gcp/sink-function", "gcp/source-service", "gcp/topic", "gcp/state",
}

// TestTerraformPassesTheChecks runs every check over everything under
// infra/terraform: the modules, their examples and the generated examples.
func TestTerraformPassesTheChecks(t *testing.T) {
	ps, err := CheckTree(terraformDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		t.Error(p)
	}
}

func TestEveryModuleIsComplete(t *testing.T) {
	for _, name := range moduleNames {
		dir := filepath.Join(modulesDir, name)
		for _, f := range []string{"versions.tf", "variables.tf", "outputs.tf", "main.tf", "README.md", "example/main.tf"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		m, err := LoadModule(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Providers) == 0 {
			t.Errorf("%s: versions.tf has no required_providers", name)
		}
		for _, v := range m.Variables {
			if filepath.Base(v.Pos.Filename) != "variables.tf" {
				t.Errorf("%s: variable %q is declared in %s, not variables.tf", name, v.Name, v.Pos.Filename)
			}
		}
		for _, o := range m.Outputs {
			if filepath.Base(o.Pos.Filename) != "outputs.tf" {
				t.Errorf("%s: output %q is declared in %s, not outputs.tf", name, o.Name, o.Pos.Filename)
			}
		}
		// The example must call this module.
		ex, err := LoadModule(filepath.Join(dir, "example"))
		if err != nil {
			t.Fatal(err)
		}
		calls := false
		for _, c := range ex.Calls {
			calls = calls || c.Source == "../"
		}
		if !calls {
			t.Errorf("%s: example/main.tf does not call the module (source = \"../\")", name)
		}
	}
}

// TestModuleREADMEs keeps each README's inputs and outputs tables equal to
// what the .tf files declare.
func TestModuleREADMEs(t *testing.T) {
	for _, name := range moduleNames {
		dir := filepath.Join(modulesDir, name)
		m, err := LoadModule(dir)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "README.md")
		have, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want, err := SpliceDocs(have, Docs(m))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if bytes.Equal(have, want) {
			continue
		}
		if update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("%s is out of date: run UPDATE_TERRAFORM=1 go test ./shared/deploy/", path)
	}
}

func TestDocsTable(t *testing.T) {
	m, err := LoadModule(filepath.Join(modulesDir, "aws/sink-function"))
	if err != nil {
		t.Fatal(err)
	}
	d := Docs(m)
	for _, want := range []string{
		"| `name` | `string` | required | Function name;",
		"| `redis_url` | `string` | `null` | REDIS_URL for the dedup ledger",
		"(sensitive) |",
		"| `sqs_queue_arns` | `list(string)` | `[]` |",
		"| `function_arn` | The Lambda function's ARN. |",
		// $${VAR} in HCL is ${VAR} in the text.
		"the values of the pipeline file's ${VAR} references",
	} {
		if !strings.Contains(d, want) {
			t.Errorf("docs lack %q:\n%s", want, d)
		}
	}
	gm, err := LoadModule(filepath.Join(modulesDir, "gcp/sink-function"))
	if err != nil {
		t.Fatal(err)
	}
	// A multi-line object type is folded onto one table row.
	if d := Docs(gm); !strings.Contains(d, "| `topics` | `list(object({ topic = string dead_letter_topic = string }))` | required |") {
		t.Errorf("object type not folded:\n%s", d)
	}
}

func TestSpliceDocs(t *testing.T) {
	in := []byte("# x\n\nintro\n\n" + DocsBegin + "\nold\n" + DocsEnd + "\ntail\n")
	out, err := SpliceDocs(in, "NEW\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := "# x\n\nintro\n\n" + DocsBegin + "\n\nNEW\n\n" + DocsEnd + "\ntail\n"; string(out) != want {
		t.Errorf("got %q", out)
	}
	if _, err := SpliceDocs([]byte("no markers"), "x"); err == nil {
		t.Error("a README without markers was accepted")
	}
}

// copyTree copies infra/terraform/modules into a temporary directory.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestCheckerCatchesMistakes breaks a copy of the modules one way at a
// time and expects the checker to name each break (and to pass the
// unbroken copy, so that each finding is the break's).
func TestCheckerCatchesMistakes(t *testing.T) {
	cases := []struct {
		name, file, old, new, want string
	}{
		{"undeclared variable", "aws/sink-function/main.tf", "var.memory_size", "var.memory_sise", "reference to undeclared variable var.memory_sise"},
		{"undeclared local", "aws/sink-function/main.tf", "for_each = local.kafka_access", "for_each = local.kafka_acess", "reference to undeclared local.kafka_acess"},
		{"undeclared resource", "aws/sink-function/main.tf", "role                           = aws_iam_role.this.arn", "role                           = aws_iam_role.thiss.arn", "reference to undeclared resource aws_iam_role.thiss"},
		{"undeclared data source", "aws/source-service/main.tf", "data.aws_iam_policy_document.execution.json", "data.aws_iam_policy_document.exec.json", "reference to undeclared data.aws_iam_policy_document.exec"},
		{"iterator outside its dynamic block", "aws/sink-function/main.tf", "resources = [statement.value]", "resources = [statment.value]", "reference to undeclared resource statment.value"},
		{"unknown module argument", "aws/sink-function/example/main.tf", "  batch_size          = 50\n", "  batch_size          = 50\n  batch_sise          = 50\n", `module "sink": ../ declares no variable "batch_sise"`},
		{"missing required argument", "aws/sink-function/example/main.tf", "  trigger_type        = \"sqs\"\n", "", `module "sink": required variable "trigger_type" of ../ is not set`},
		{"unknown module output", "aws/sink-function/example/main.tf", "module.sink.function_arn", "module.sink.function_arm", `module.sink.function_arm: ../ has no output "function_arm"`},
		{"unknown output of a sibling module", "gcp/sink-function/example/main.tf", "module.topic.dead_letter_topic_id", "module.topic.dead_letter_id", `has no output "dead_letter_id"`},
		{"undeclared module", "aws/topic/example/main.tf", "module.clicks.stream_arn", "module.click.stream_arn", "reference to undeclared module.click"},
		{"variable without description", "gcp/topic/variables.tf", "  description = \"Project; null for the provider's.\"\n", "", `variable "project" has no description`},
		{"variable without type", "gcp/state/variables.tf", "  type        = number\n  description = \"Memory in GB.\"", "  description = \"Memory in GB.\"", `variable "memory_size_gb" has no type`},
		{"output without description", "aws/state/outputs.tf", "  description = \"The cache's security group.\"\n", "", `output "security_group_id" has no description`},
		{"not canonical", "aws/topic/main.tf", "  name                      = local.dead_letter_name", "  name = local.dead_letter_name", "not in canonical format"},
		{"syntax error", "gcp/topic/main.tf", "resource \"google_pubsub_topic\" \"this\" {", "resource \"google_pubsub_topic\" \"this\" {{", "main.tf:"},
		{"provider not required", "gcp/topic/versions.tf", "    google = {", "    googl = {", `provider "google" is not in required_providers`},
		{"duplicate variable", "aws/state/variables.tf", "variable \"engine\" {", "variable \"vpc_id\" {", `variable "vpc_id" is declared twice`},
		{"count.index without count", "aws/topic/main.tf", "message_retention_seconds = var.dead_letter_retention_seconds", "message_retention_seconds = var.dead_letter_retention_seconds + count.index", "count.index in a resource without count"},
		{"each without for_each", "gcp/sink-function/main.tf", "  role   = \"roles/storage.objectViewer\"", "  role   = each.value", "each.value in a resource without for_each"},
		{"validation reads another variable", "aws/topic/variables.tf", "    condition     = contains([\"sqs\", \"sqs-fifo\", \"kinesis\", \"kafka\"], var.type)", "    condition     = contains([\"sqs\", \"sqs-fifo\", \"kinesis\", \"kafka\"], var.name)", `the validation of variable "type" may only refer to var.type`},
		{"unknown function", "aws/sink-function/main.tf", `trimprefix(var.pipeline, "s3://")`, `trimprefx(var.pipeline, "s3://")`, "call to unknown function trimprefx()"},
		{"unknown function in a dynamic block", "gcp/sink-function/main.tf", "for_each = var.subnetwork == null ? [] : [var.subnetwork]", "for_each = var.subnetwork == null ? [] : tolst([var.subnetwork])", "call to unknown function tolst()"},
		{"missing module directory", "aws/topic/example/main.tf", `source = "../"`, `source = "../nowhere"`, `module "orders": source "../nowhere"`},
	}
	clean := copyTree(t, modulesDir)
	if ps, err := CheckTree(clean); err != nil || len(ps) > 0 {
		t.Fatalf("the unbroken copy does not pass: %v %v", err, ps)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyTree(t, modulesDir)
			path := filepath.Join(dir, c.file)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, []byte(c.old)) {
				t.Fatalf("%s no longer contains %q: update the test", c.file, c.old)
			}
			if err := os.WriteFile(path, bytes.Replace(b, []byte(c.old), []byte(c.new), 1), 0o644); err != nil {
				t.Fatal(err)
			}
			ps, err := CheckTree(dir)
			if err != nil {
				t.Fatal(err)
			}
			found := slices.ContainsFunc(ps, func(p Problem) bool { return strings.Contains(p.String(), c.want) })
			if !found {
				t.Errorf("no problem says %q; got %v", c.want, ps)
			}
		})
	}
}
