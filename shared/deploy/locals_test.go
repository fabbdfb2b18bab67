package deploy

import (
	"crypto/sha1"
	"encoding/hex"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// The modules' locals hold their trickiest expressions (ARNs derived from
// URLs, secret ARNs cut out of references, names cut to a cloud's limits,
// environments filtered of reserved names). Terraform's functions are
// go-cty's standard library plus a few of its own, so the locals can be
// evaluated here with the same semantics, given variables and data
// sources, without Terraform.

func strFunc(f func(a, b string) cty.Value, params ...string) function.Function {
	var ps []function.Parameter
	for _, p := range params {
		ps = append(ps, function.Parameter{Name: p, Type: cty.String})
	}
	return function.New(&function.Spec{
		Params: ps,
		Type:   func([]cty.Value) (cty.Type, error) { return cty.DynamicPseudoType, nil },
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			b := ""
			if len(args) > 1 {
				b = args[1].AsString()
			}
			return f(args[0].AsString(), b), nil
		},
	})
}

var tfFunctions = map[string]function.Function{
	"compact": stdlib.CompactFunc, "concat": stdlib.ConcatFunc, "contains": stdlib.ContainsFunc,
	"distinct": stdlib.DistinctFunc, "keys": stdlib.KeysFunc, "merge": stdlib.MergeFunc,
	"regex": stdlib.RegexFunc, "replace": tfReplace, "split": stdlib.SplitFunc,
	"substr": stdlib.SubstrFunc, "trimprefix": stdlib.TrimPrefixFunc, "trimsuffix": stdlib.TrimSuffixFunc,
	"values": stdlib.ValuesFunc, "length": stdlib.LengthFunc,
	"startswith": strFunc(func(a, b string) cty.Value { return cty.BoolVal(strings.HasPrefix(a, b)) }, "string", "prefix"),
	"endswith":   strFunc(func(a, b string) cty.Value { return cty.BoolVal(strings.HasSuffix(a, b)) }, "string", "suffix"),
	"sha1": strFunc(func(a, _ string) cty.Value {
		h := sha1.Sum([]byte(a))
		return cty.StringVal(hex.EncodeToString(h[:]))
	}, "string"),
}

// tfReplace is Terraform's replace(), not go-cty's: a search string
// between slashes is a regular expression (RE2, like Terraform's), which
// go-cty's ReplaceFunc would look for literally.
var tfReplace = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "str", Type: cty.String}, {Name: "substr", Type: cty.String}, {Name: "replace", Type: cty.String}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		str, sub, rep := args[0].AsString(), args[1].AsString(), args[2].AsString()
		if len(sub) > 1 && sub[0] == '/' && sub[len(sub)-1] == '/' {
			re, err := regexp.Compile(sub[1 : len(sub)-1])
			if err != nil {
				return cty.NilVal, err
			}
			return cty.StringVal(re.ReplaceAllString(str, rep)), nil
		}
		return cty.StringVal(strings.ReplaceAll(str, sub, rep)), nil
	},
})

// evalLocals evaluates a module's locals with vars (defaults for the rest)
// and data (data sources, by type, then name).
func evalLocals(t *testing.T, module string, vars map[string]cty.Value, data map[string]cty.Value) map[string]cty.Value {
	t.Helper()
	m, err := LoadModule(filepath.Join(modulesDir, module))
	if err != nil {
		t.Fatal(err)
	}
	vv := map[string]cty.Value{}
	for _, v := range m.Variables {
		switch val, ok := vars[v.Name]; {
		case ok:
			vv[v.Name] = val
		case v.HasDefault:
			d, diags := v.defaultExpr.Value(nil)
			if diags.HasErrors() {
				t.Fatalf("var.%s default: %v", v.Name, diags)
			}
			vv[v.Name] = d
		default:
			vv[v.Name] = cty.NullVal(cty.DynamicPseudoType)
		}
	}
	for name := range vars {
		if _, ok := vv[name]; !ok {
			t.Fatalf("%s declares no variable %q", module, name)
		}
	}
	done := map[string]cty.Value{}
	for pass := 0; len(done) < len(m.localExprs); pass++ {
		if pass > len(m.localExprs) {
			t.Fatalf("%s: locals depend on each other in a cycle", module)
		}
		for name, e := range m.localExprs {
			if _, ok := done[name]; ok {
				continue
			}
			ready := true
			for _, tr := range e.Variables() {
				if tr.RootName() == "local" {
					if _, ok := done[tr[1].(hcl.TraverseAttr).Name]; !ok {
						ready = false
					}
				}
			}
			if !ready {
				continue
			}
			ctx := &hcl.EvalContext{
				Variables: map[string]cty.Value{"var": cty.ObjectVal(vv), "local": cty.ObjectVal(done), "data": cty.ObjectVal(data)},
				Functions: tfFunctions,
			}
			v, diags := e.Value(ctx)
			if diags.HasErrors() {
				t.Fatalf("%s: local.%s: %v", module, name, diags)
			}
			done[name] = v
		}
	}
	return done
}

func strs(vs ...string) cty.Value {
	var out []cty.Value
	for _, v := range vs {
		out = append(out, cty.StringVal(v))
	}
	if len(out) == 0 {
		return cty.ListValEmpty(cty.String)
	}
	return cty.ListVal(out)
}

func strMap(kv ...string) cty.Value {
	m := map[string]cty.Value{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = cty.StringVal(kv[i+1])
	}
	if len(m) == 0 {
		return cty.MapValEmpty(cty.String)
	}
	return cty.MapVal(m)
}

func asMap(t *testing.T, v cty.Value) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, e := range v.AsValueMap() {
		out[k] = e.AsString()
	}
	return out
}

func asList(v cty.Value) []string {
	var out []string
	for _, e := range v.AsValueSlice() {
		out = append(out, e.AsString())
	}
	return out
}

var awsData = cty.ObjectVal(map[string]cty.Value{
	"aws_partition": cty.ObjectVal(map[string]cty.Value{"current": cty.ObjectVal(map[string]cty.Value{"partition": cty.StringVal("aws")})}),
})

func TestAWSSinkFunctionLocals(t *testing.T) {
	l := evalLocals(t, "aws/sink-function", map[string]cty.Value{
		"pipeline":              cty.StringVal("s3://artifacts/shop/pipeline-0123456789ab.yaml"),
		"connector":             cty.StringVal("sinks.lake"),
		"redis_url":             cty.StringVal("rediss://cache:6379?cluster=true"),
		"environment":           strMap("PG_HOST", "db", "AWS_REGION", "eu-west-1", "AWS_LAMBDA_FUNCTION_NAME", "x", "RIVVEN_CONNECTOR", "sinks.other"),
		"trigger_type":          cty.StringVal("kafka"),
		"subnet_ids":            strs("subnet-a", "subnet-b"),
		"security_group_ids":    strs("sg-1"),
		"kafka_auth_secret_arn": cty.StringVal("arn:aws:secretsmanager:eu-west-1:1:secret:kafka-AbCdEf"),
	}, map[string]cty.Value{"aws_partition": awsData.GetAttr("aws_partition")})
	if got := l["pipeline_object_arn"].AsString(); got != "arn:aws:s3:::artifacts/shop/pipeline-0123456789ab.yaml" {
		t.Errorf("pipeline_object_arn = %q", got)
	}
	env := asMap(t, l["environment"])
	want := map[string]string{"PG_HOST": "db", "RIVVEN_CONNECTOR": "sinks.lake", "RIVVEN_PIPELINE": "s3://artifacts/shop/pipeline-0123456789ab.yaml",
		"RIVVEN_PAYLOAD": "auto", "REDIS_URL": "rediss://cache:6379?cluster=true"}
	if len(env) != len(want) {
		t.Errorf("environment = %v, want %v", env, want)
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("environment[%s] = %q, want %q", k, env[k], v)
		}
	}
	if got := len(l["kafka_access"].AsValueSlice()); got != 4 {
		t.Errorf("kafka_access has %d entries, want 2 subnets + 1 group + 1 secret", got)
	}
	if got := asList(l["secret_arns"]); len(got) != 1 {
		t.Errorf("secret_arns = %v", got)
	}
	if !l["needs_network"].True() {
		t.Error("a Kafka trigger needs network permissions")
	}

	// A pipeline inside the package: no S3 grant; no Redis, no VPC.
	l = evalLocals(t, "aws/sink-function", map[string]cty.Value{
		"pipeline": cty.StringVal("/var/task/pipeline.yaml"), "connector": cty.StringVal("sinks.x"),
		"trigger_type": cty.StringVal("sqs"), "log_level": cty.StringVal("debug"),
	}, map[string]cty.Value{"aws_partition": awsData.GetAttr("aws_partition")})
	if !l["pipeline_object_arn"].IsNull() {
		t.Errorf("pipeline_object_arn = %#v", l["pipeline_object_arn"])
	}
	env = asMap(t, l["environment"])
	if _, ok := env["REDIS_URL"]; ok || env["RIVVEN_LOG_LEVEL"] != "debug" {
		t.Errorf("environment = %v", env)
	}
	if l["needs_network"].True() || len(l["secret_arns"].AsValueSlice()) != 0 {
		t.Errorf("needs_network %v, secret_arns %#v", l["needs_network"], l["secret_arns"])
	}
}

func TestAWSSourceServiceLocals(t *testing.T) {
	l := evalLocals(t, "aws/source-service", map[string]cty.Value{
		"connector_name": cty.StringVal("pg"),
		"log_level":      cty.StringVal("debug"),
		"redis_url":      cty.StringVal("rediss://cache:6379?cluster=true"),
		"environment":    strMap("PG_HOST", "db", "PG_PASSWORD", "plain-would-leak"),
		"secrets": strMap(
			"PG_PASSWORD", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pg-AbCdEf:password::",
			"PG_USER", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pg-AbCdEf:user::",
			"API_KEY", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:api-XyZ123"),
	}, nil)
	if got := strings.Join(asList(l["command"]), " "); got != "run source pg -c /etc/rivven/pipeline.yaml --json-logs --log-level debug" {
		t.Errorf("command = %q", got)
	}
	if got := strings.Join(asList(l["secret_arns"]), " "); got != "arn:aws:secretsmanager:eu-west-1:123456789012:secret:api-XyZ123 arn:aws:secretsmanager:eu-west-1:123456789012:secret:pg-AbCdEf" {
		t.Errorf("secret_arns = %q (the secrets themselves, once each)", got)
	}
	env := asMap(t, l["environment"])
	if len(env) != 2 || env["PG_HOST"] != "db" || env["REDIS_URL"] == "" {
		t.Errorf("environment = %v: a name filled from a secret is no plain variable", env)
	}
}

func TestGCPLocals(t *testing.T) {
	project := cty.ObjectVal(map[string]cty.Value{"this": cty.ObjectVal(map[string]cty.Value{"number": cty.StringVal("123456")})})
	name := "shop-prod-sink-search-index-a1b2"
	l := evalLocals(t, "gcp/sink-function", map[string]cty.Value{
		"name": cty.StringVal(name), "pipeline": cty.StringVal("gs://artifacts/shop/pipeline-0123.yaml"),
		"connector": cty.StringVal("sinks.search"), "environment": strMap("PORT", "1", "PG_HOST", "db", "REDIS_URL", "plain"),
		"secret_env": strMap("REDIS_URL", "projects/p/secrets/r"),
	}, map[string]cty.Value{"google_project": project})
	account := l["account"].AsString() + "-run"
	if len(account) < 6 || len(account) > 30 || strings.Contains(account, "--") {
		t.Errorf("service account id %q breaks the 6-30 rule", account)
	}
	other := evalLocals(t, "gcp/sink-function", map[string]cty.Value{
		"name": cty.StringVal("shop-prod-sink-search-index-other"), "pipeline": cty.StringVal("x"), "connector": cty.StringVal("sinks.x"),
	}, map[string]cty.Value{"google_project": project})
	if other["account"].AsString() == l["account"].AsString() {
		t.Errorf("names that share 20 characters share a service account id: %q", account)
	}
	if got := l["pipeline_bucket"].AsString(); got != "artifacts" {
		t.Errorf("pipeline_bucket = %q", got)
	}
	if got := l["pubsub_agent"].AsString(); got != "serviceAccount:service-123456@gcp-sa-pubsub.iam.gserviceaccount.com" {
		t.Errorf("pubsub_agent = %q", got)
	}
	env := asMap(t, l["environment"])
	if _, ok := env["PORT"]; ok {
		t.Errorf("environment sets PORT, which Cloud Run reserves: %v", env)
	}
	if _, ok := env["REDIS_URL"]; ok {
		t.Errorf("environment repeats a secret's name: %v", env)
	}
	if env["PG_HOST"] != "db" || env["RIVVEN_PIPELINE"] != "gs://artifacts/shop/pipeline-0123.yaml" {
		t.Errorf("environment = %v", env)
	}

	l = evalLocals(t, "gcp/source-service", map[string]cty.Value{
		"name": cty.StringVal("shop-source-pg"), "connector_name": cty.StringVal("pg"), "kind": cty.StringVal("sink"),
	}, nil)
	if got := strings.Join(asList(l["args"]), " "); got != "run sink pg -c /etc/rivven/pipeline.yaml --json-logs" {
		t.Errorf("args = %q", got)
	}
}

func TestAWSTopicLocals(t *testing.T) {
	l := evalLocals(t, "aws/topic", map[string]cty.Value{"name": cty.StringVal("shop-orders"), "type": cty.StringVal("sqs-fifo")}, nil)
	if !l["sqs"].True() || !l["fifo"].True() || l["suffix"].AsString() != ".fifo" {
		t.Errorf("sqs-fifo: %v", l)
	}
	l = evalLocals(t, "aws/topic", map[string]cty.Value{"name": cty.StringVal("shop-orders"), "type": cty.StringVal("kinesis")}, nil)
	if l["sqs"].True() || l["suffix"].AsString() != "" {
		t.Errorf("kinesis: %v", l)
	}
}

// The evaluator must see what Terraform sees: an expression this package
// cannot evaluate fails the test rather than passing silently.
func TestEvalLocalsRejectsUnknownFunctions(t *testing.T) {
	e, diags := hclsyntax.ParseExpression([]byte(`nosuch("x")`), "x.tf", hcl.Pos{Line: 1, Column: 1})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if _, diags := e.Value(&hcl.EvalContext{Functions: tfFunctions}); !diags.HasErrors() {
		t.Error("an unknown function evaluated")
	}
}
