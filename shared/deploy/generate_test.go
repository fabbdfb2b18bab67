package deploy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/connector"
)

// examples are the committed deployments under infra/terraform/examples:
// pipeline file → example folder, generated for each of clouds (both when
// empty).
var examples = []struct {
	pipeline, dir string
	clouds        []string
	topics        string // Options.Topics
}{
	{"../../samples/pipelines/quickstart.yaml", "quickstart", nil, ""},
	{examplesDir + "/cdc-to-lake/pipeline.yaml", "cdc-to-lake", nil, ""},
	// One pipeline per cloud: their secrets are aws-sm: and gcp-sm:
	// references, each granted on its own cloud. Three sinks read one
	// topic: MSK on AWS (an SQS queue has one consumer).
	{examplesDir + "/cdc-to-warehouse/aws.yaml", "cdc-to-warehouse", []string{"aws"}, "msk"},
	{examplesDir + "/cdc-to-warehouse/gcp.yaml", "cdc-to-warehouse", []string{"gcp"}, ""},
	{examplesDir + "/secret-refs/pipeline-aws.yaml", "secret-refs", []string{"aws"}, ""},
	{examplesDir + "/secret-refs/pipeline-gcp.yaml", "secret-refs", []string{"gcp"}, ""},
}

func parse(t *testing.T, raw []byte) *config.Pipeline {
	t.Helper()
	p, _, err := ParsePipeline(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// exampleOptions are the options `rivven-connect deploy terraform --out
// infra/terraform/examples/<name>/<cloud>` uses inside the repository.
func exampleOptions(cloud, pipeline string) Options {
	return Options{Cloud: cloud, Modules: "../../../modules", ModulesFrom: ModulesFromCheckout, DistDir: "../../../../../dist", Source: filepath.Base(pipeline)}
}

// TestExamplesUpToDate regenerates the committed examples and compares
// them byte for byte (UPDATE_TERRAFORM=1 rewrites them).
func TestExamplesUpToDate(t *testing.T) {
	for _, ex := range examples {
		raw, err := os.ReadFile(ex.pipeline)
		if err != nil {
			t.Fatal(err)
		}
		clouds := ex.clouds
		if clouds == nil {
			clouds = []string{"aws", "gcp"}
		}
		for _, cloud := range clouds {
			opts := exampleOptions(cloud, ex.pipeline)
			opts.Topics = ex.topics
			res, err := Generate(parse(t, raw), raw, opts)
			if err != nil {
				t.Fatalf("%s/%s: %v", ex.dir, cloud, err)
			}
			dir := filepath.Join(examplesDir, ex.dir, cloud)
			if update {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, name := range sortedKeys(res.Files) {
				path := filepath.Join(dir, name)
				have, err := os.ReadFile(path)
				if err == nil && bytes.Equal(have, res.Files[name]) {
					continue
				}
				if update {
					if err := os.WriteFile(path, res.Files[name], 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				t.Errorf("%s is out of date: run UPDATE_TERRAFORM=1 go test ./shared/deploy/", path)
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				if _, ok := res.Files[e.Name()]; !ok && !strings.HasPrefix(e.Name(), ".") && e.Name() != "README.md" {
					t.Errorf("%s: %s is not generated any more; remove it", dir, e.Name())
				}
			}
		}
	}
}

// multi is a pipeline with two sources, two sinks sharing a topic, a sink
// reading two topics, a disabled sink, ${VAR}s with and without defaults,
// and names that need cleaning. It has no broker block: the deployment
// adds one.
const multi = `
version: "1.0"
settings:
  health: {enabled: true, port: 9000}
sources:
  Orders.DB:
    connector: postgres-cdc
    topic: cdc.orders
    config: {host: "${PG_HOST}", password: "${PG_PASSWORD}"}
  clicks:
    connector: datagen
    topic: web.clicks
    config: {pattern: pageviews, events_per_second: "${RATE:-5}"}
sinks:
  lake:
    connector: object-storage
    topics: [cdc.orders, web.clicks]
    config: {bucket: "${LAKE_BUCKET}", prefix: "$${literal}"}
  search_index:
    connector: opensearch
    topics: [cdc.orders]
    consumer_group: search
  old:
    connector: stdout
    topics: [legacy]
    enabled: false
`

func generateInto(t *testing.T, raw []byte, opts Options) (string, *Result) {
	t.Helper()
	dir := t.TempDir()
	abs, err := filepath.Abs(modulesDir)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(dir, abs)
	if err != nil {
		t.Fatal(err)
	}
	opts.Modules = filepath.ToSlash(rel)
	res, err := Generate(parse(t, raw), raw, opts)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range res.Files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, res
}

// TestGeneratedModulesPassTheChecks generates every cloud and topic
// flavour for pipelines of several shapes and checks the result against
// the real modules.
func TestGeneratedModulesPassTheChecks(t *testing.T) {
	quick, err := os.ReadFile(examples[0].pipeline)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		raw  []byte
		opts Options
	}{
		{"quickstart/aws-sqs", quick, Options{Cloud: "aws"}},
		{"quickstart/aws-sqs-fifo", quick, Options{Cloud: "aws", Topics: "sqs-fifo"}},
		{"quickstart/gcp", quick, Options{Cloud: "gcp"}},
		{"multi/aws-kafka with its broker", []byte(multiKafka), Options{Cloud: "aws", Topics: "kafka"}},
		{"multi/aws-msk with its broker", []byte(multiKafka), Options{Cloud: "aws", Topics: "msk"}},
		{"multi/aws-sink-services with its broker", []byte(multiKafka), Options{Cloud: "aws", Sinks: "service"}},
		{"dotted/aws-sqs-fifo", []byte(dotted), Options{Cloud: "aws", Topics: "sqs-fifo"}},
		{"dotted/aws-sqs with its broker", []byte(dotted + "broker:\n  transport: sqs\n  sqs: {queue_prefix: shop.}\n"), Options{Cloud: "aws"}},
		{"dotted/gcp", []byte(dotted), Options{Cloud: "gcp"}},
		{"multi/aws-msk", []byte(multi), Options{Cloud: "aws", Topics: "msk"}},
		{"multi/aws-kafka", []byte(multi), Options{Cloud: "aws", Topics: "kafka"}},
		{"multi/gcp", []byte(multi), Options{Cloud: "gcp"}},
		{"multi/aws-sink-services", []byte(multi), Options{Cloud: "aws", Sinks: "service"}},
		{"multi/gcp-sink-services", []byte(multi), Options{Cloud: "gcp", Sinks: "service"}},
		{"sinks only/aws", []byte("sinks:\n  a:\n    connector: stdout\n    topics: [x]\n"), Options{Cloud: "aws"}},
		{"sources only/gcp", []byte("sources:\n  a:\n    connector: datagen\n    topic: x\n"), Options{Cloud: "gcp"}},
		{"remote modules", quick, Options{Cloud: "aws", Modules: "git::https://example.com/rivven.git//infra/terraform/modules?ref=v1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, res := generateInto(t, c.raw, c.opts)
			if c.opts.Modules != "" {
				// A remote source is kept, with the subpath before ?ref.
				res, err := Generate(parse(t, c.raw), c.raw, c.opts)
				if err != nil {
					t.Fatal(err)
				}
				if want := `"git::https://example.com/rivven.git//infra/terraform/modules/aws/sink-function?ref=v1"`; !bytes.Contains(res.Files["main.tf"], []byte(want)) {
					t.Errorf("main.tf lacks %s:\n%s", want, res.Files["main.tf"])
				}
				return
			}
			ps, err := Check(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ps {
				t.Error(p)
			}
			if t.Failed() {
				t.Logf("main.tf:\n%s", res.Files["main.tf"])
			}
		})
	}
}

// TestGenerateIsDeterministic generates the same pipeline many times: map
// iteration order differs from run to run, the bytes must not.
func TestGenerateIsDeterministic(t *testing.T) {
	for _, cloud := range []string{"aws", "gcp"} {
		opts := Options{Cloud: cloud, Modules: "../modules", Topics: map[string]string{"aws": "kafka", "gcp": ""}[cloud]}
		first, err := Generate(parse(t, []byte(multi)), []byte(multi), opts)
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			again, err := Generate(parse(t, []byte(multi)), []byte(multi), opts)
			if err != nil {
				t.Fatal(err)
			}
			for name, b := range first.Files {
				if !bytes.Equal(b, again.Files[name]) {
					t.Fatalf("%s/%s differs between runs", cloud, name)
				}
			}
		}
	}
}

func TestGenerateWiring(t *testing.T) {
	res, err := Generate(parse(t, []byte(multi)), []byte(multi), Options{Cloud: "aws", Topics: "msk", Modules: "../m"})
	if err != nil {
		t.Fatal(err)
	}
	main, vars := string(res.Files["main.tf"]), string(res.Files["variables.tf"])
	for _, want := range []string{
		`module "source_orders_db" {`,
		`connector_name      = "Orders.DB"`,
		`name                = "${var.name_prefix}-source-orders-db"`,
		`module "sink_search_index" {`,
		`connector          = "sinks.search_index"`,
		`package_file       = "${var.dist_dir}/aws/sink-opensearch.zip"`,
		`package_file       = "${var.dist_dir}/aws/sink-objectstorage.zip"`,
		`kafka_consumer_group = "search"`, // its consumer_group
		`kafka_consumer_group = "lake"`,   // its name
		`kafka_topics         = [module.topic_cdc_orders.kafka_topic, module.topic_web_clicks.kafka_topic]`,
		`dead_letter_arn      = module.topic_cdc_orders.dead_letter_arn`,
		`kafka_topic = "cdc.orders"`,
		`source = "../m/aws/topic"`,
		"# - sinks.lake reads 2 topics and has one on-failure destination",
		// The generated broker block reads the seeds from the environment.
		`broker_env = { RIVVEN_BROKER_BOOTSTRAP_1 = element(var.kafka_bootstrap_servers, 0), RIVVEN_BROKER_BOOTSTRAP_2 = element(var.kafka_bootstrap_servers, 1), RIVVEN_BROKER_BOOTSTRAP_3 = element(var.kafka_bootstrap_servers, 2) }`,
		`environment = merge(var.pipeline_env, local.broker_env)`,
		"through broker.transport kafka",
	} {
		if !strings.Contains(squeeze(main), squeeze(want)) {
			t.Errorf("main.tf lacks %q", want)
		}
	}
	for _, bad := range []string{"legacy", "sink_old"} {
		if strings.Contains(main, bad) {
			t.Errorf("main.tf deploys the disabled sink (%q)", bad)
		}
	}
	if !strings.Contains(vars, "Without a default: LAKE_BUCKET, PG_HOST, PG_PASSWORD. With a default: RATE.") {
		t.Errorf("pipeline_env does not list the references:\n%s", vars)
	}
	if strings.Contains(vars, "literal") {
		t.Error("$${literal} is an escaped $, not a reference")
	}
	if res.Functions != 2 || res.Services != 2 || res.Topics != 2 {
		t.Errorf("counts %d/%d/%d", res.Functions, res.Services, res.Topics)
	}
	if !strings.Contains(vars, `variable "kafka_bootstrap_servers"`) || !strings.Contains(vars, `variable "msk_cluster_arn"`) {
		t.Errorf("msk needs the cluster and its servers:\n%s", vars)
	}
	// The broker's servers become the default of kafka_bootstrap_servers,
	// and the pipeline's own broker block is left as it is.
	res, err = Generate(parse(t, []byte(multiKafka)), []byte(multiKafka), Options{Cloud: "aws", Topics: "kafka", Modules: "../m"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(squeeze(string(res.Files["variables.tf"])), `default = ["kafka-1:9092", "kafka-2:9092"]`) {
		t.Errorf("variables.tf:\n%s", res.Files["variables.tf"])
	}
	if !bytes.Equal(res.Files[PipelineFile], []byte(multiKafka)) {
		t.Error("the pipeline copy is not the file as written")
	}
	if strings.Contains(string(res.Files["main.tf"]), "broker_env") {
		t.Error("the pipeline's broker block reads no generated variable")
	}
}

func TestGenerateRefuses(t *testing.T) {
	quick, err := os.ReadFile(examples[0].pipeline)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		raw  []byte
		opts Options
		want string
	}{
		{"sqs fan-out", []byte(multi), Options{Cloud: "aws"}, `topic "cdc.orders" is consumed by sinks lake, search_index, and an SQS queue hands each message to one consumer`},
		{"unknown cloud", quick, Options{Cloud: "azure"}, `cloud "azure": aws or gcp`},
		{"unknown topics", quick, Options{Cloud: "aws", Topics: "sns"}, `topics "sns": one of sqs, sqs-fifo, msk, kafka`},
		{"kinesis", quick, Options{Cloud: "aws", Topics: "kinesis"}, "topics kinesis: rivven-connect run source cannot publish to Kinesis"},
		{"topics on gcp", quick, Options{Cloud: "gcp", Topics: "sqs"}, "GCP topics are Pub/Sub topics"},
		{"topic from the environment", []byte("sources:\n  a:\n    connector: datagen\n    topic: ${TOPIC}\n"), Options{Cloud: "aws"}, "sources.a.topic: \"${TOPIC}\": a deployed topic needs a literal name"},
		{"sinks unknown", quick, Options{Cloud: "aws", Sinks: "lambda"}, `sinks "lambda": function or service`},
		{"sink services with topics", quick, Options{Cloud: "aws", Sinks: "service", Topics: "msk"}, "there are no topics to choose"},
		{"nothing enabled", []byte("sinks:\n  a:\n    connector: stdout\n    topics: [x]\n    enabled: false\n"), Options{Cloud: "aws"}, "no enabled source or sink"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.opts.Modules == "" {
				c.opts.Modules = "../m"
			}
			_, err := Generate(parse(t, c.raw), c.raw, c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
}

func hasNote(notes []string, part string) bool {
	return slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, part) })
}

func TestNotes(t *testing.T) {
	quick, err := os.ReadFile(examples[0].pipeline)
	if err != nil {
		t.Fatal(err)
	}
	gen := func(raw []byte, opts Options) []string {
		t.Helper()
		opts.Modules = "../m"
		res, err := Generate(parse(t, raw), raw, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range res.Notes {
			if !strings.Contains(string(res.Files["main.tf"]), wrap("- "+n, 88)[0]) {
				t.Errorf("main.tf lacks the note %q", n)
			}
		}
		return res.Notes
	}
	const unused = "goes unused"
	// Cloud Run needs the health port of a service, which the deployment's
	// pipeline copy turns on (TestGCPServicesServeTheirHealthPort): nothing
	// left to note.
	if n := gen(quick, Options{Cloud: "gcp"}); len(n) != 0 {
		t.Errorf("gcp notes %q", n)
	}
	if n := gen(quick, Options{Cloud: "aws"}); len(n) != 0 {
		t.Errorf("aws notes %q", n)
	}
	// Sinks on the Redis streams get what the sources publish.
	if n := gen(quick, Options{Cloud: "aws", Sinks: "service"}); len(n) != 0 {
		t.Errorf("aws service notes %q", n)
	}
	if n := gen(quick, Options{Cloud: "gcp", Sinks: "service"}); len(n) != 0 {
		t.Errorf("gcp service notes %q", n)
	}
	raw := []byte("settings:\n  state:\n    redis_url: redis://elsewhere:6379\nsinks:\n  a:\n    connector: stdout\n    topics: [x]\n")
	if n := gen(raw, Options{Cloud: "aws"}); len(n) != 1 || !hasNote(n, unused) {
		t.Errorf("notes %q", n)
	}
	raw = []byte("settings:\n  state:\n    redis_url: ${REDIS_URL}\nsinks:\n  a:\n    connector: stdout\n    topics: [x]\n")
	if n := gen(raw, Options{Cloud: "aws"}); len(n) != 0 {
		t.Errorf("redis_url: ${REDIS_URL} is what the deployment sets: %q", n)
	}
}

func TestGenerateSinkServices(t *testing.T) {
	for _, cloud := range []string{"aws", "gcp"} {
		res, err := Generate(parse(t, []byte(multi)), []byte(multi), Options{Cloud: cloud, Sinks: "service", Modules: "../m"})
		if err != nil {
			t.Fatal(err)
		}
		main, vars := squeeze(string(res.Files["main.tf"])), string(res.Files["variables.tf"])
		for _, want := range []string{
			`module "sink_search_index" { source = "../m/` + cloud + `/source-service" name = "${var.name_prefix}-sink-search-index"`,
			`image = var.service_image kind = "sink" connector_name = "search_index"`,
			`module "source_clicks" { source = "../m/` + cloud + `/source-service" name = "${var.name_prefix}-source-clicks"`,
			"# 2 source service(s), 2 sink service(s) on the Redis Streams transport.",
		} {
			if !strings.Contains(main, want) {
				t.Errorf("%s main.tf lacks %q:\n%s", cloud, want, res.Files["main.tf"])
			}
		}
		for _, absent := range []string{"/topic\"", "sink-function", "pipeline.yaml\"", "topic_"} {
			if strings.Contains(main, absent) {
				t.Errorf("%s main.tf has %q: the sinks read the Redis streams", cloud, absent)
			}
		}
		for _, absent := range []string{"artifact_bucket", "dist_dir", "image_registry"} {
			if strings.Contains(vars, absent) {
				t.Errorf("%s variables.tf declares %s, which nothing uses", cloud, absent)
			}
		}
		if res.Functions != 0 || res.Services != 4 || res.Topics != 0 {
			t.Errorf("%s counts %d/%d/%d", cloud, res.Functions, res.Services, res.Topics)
		}
	}
}

func TestCleanNames(t *testing.T) {
	for in, want := range map[string]string{
		"demo.orders":                         "demo-orders",
		"Orders..DB_1":                        "orders-db-1",
		"--x--":                               "x",
		"ü":                                   "x",
		"a.very.long.topic.name.that.goes.on": "a-very-long-top-" + hash4("a.very.long.topic.name.that.goes.on"),
	} {
		if got := clean(in, '-', 20); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
		if got := clean(in, '-', 20); len(got) > 20 {
			t.Errorf("clean(%q) = %q is longer than 20", in, got)
		}
	}
	// Topics that clean to the same name stay apart.
	raw := []byte("sinks:\n  a:\n    connector: stdout\n    topics: [x.y]\n  b:\n    connector: stdout\n    topics: [x_y]\n")
	res, err := Generate(parse(t, raw), raw, Options{Cloud: "aws", Modules: "../m"})
	if err != nil {
		t.Fatal(err)
	}
	main := string(res.Files["main.tf"])
	if !strings.Contains(main, `module "topic_x_y" {`) || !strings.Contains(main, `module "topic_x_y_`+hash4("x_y")+`" {`) {
		t.Errorf("colliding names not told apart:\n%s", main)
	}
}

func TestEnvRefs(t *testing.T) {
	refs, err := envRefs([]byte("# ${IN_A_COMMENT}\na: ${A}\nb: x-${B:-1}-${A:-2}\nc: $${NOT}\nd: [\"${D:-}\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []envRef{{"A", false}, {"B", true}, {"D", true}}
	if !slices.Equal(refs, want) {
		t.Errorf("got %v, want %v", refs, want)
	}
}

func TestParsePipelineKeepsReferences(t *testing.T) {
	p, unknown, err := ParsePipeline([]byte(multi), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(unknown, []string{"source postgres-cdc", "source datagen", "sink object-storage", "sink opensearch", "sink stdout"}) {
		t.Errorf("unknown = %v", unknown)
	}
	if len(p.SinkNames()) != 2 {
		t.Errorf("sinks %v", p.SinkNames())
	}
}

// squeeze folds runs of spaces, which hclwrite uses to align "=".
func squeeze(s string) string { return strings.Join(strings.Fields(s), " ") }

type nopSink struct{ concurrent bool }

func (nopSink) Write(context.Context, []*events.Event) error { return nil }
func (s nopSink) ConcurrentWrites() bool                     { return s.concurrent }

func init() {
	type cfg struct{}
	for _, conc := range []bool{false, true} {
		catalog.RegisterSink[cfg](catalog.Meta{Name: fmt.Sprintf("deploytest-concurrent-%v", conc), Category: catalog.Utility, Description: "test", ConcurrentWrites: conc},
			func(context.Context, *cfg) (connector.Sink, error) { return nopSink{conc}, nil })
	}
}

// A Cloud Run sink takes concurrent pushes only when its writes run in
// parallel (the catalog entry says so); the others keep the module's 1.
func TestGCPConcurrencyFollowsTheSink(t *testing.T) {
	raw := []byte(`version: "1.0"
sources:
  gen: {connector: datagen, topic: orders, config: {pattern: orders}}
sinks:
  par: {connector: deploytest-concurrent-true, topics: [orders], config: {}}
  one: {connector: deploytest-concurrent-false, topics: [orders], config: {}}
`)
	res, err := Generate(parse(t, raw), raw, exampleOptions("gcp", "p.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclwrite.ParseConfig(res.Files["main.tf"], "main.tf", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	got := map[string]string{}
	for _, blk := range f.Body().Blocks() {
		if blk.Type() != "module" || !strings.HasPrefix(blk.Labels()[0], "sink_") {
			continue
		}
		v := ""
		if a := blk.Body().GetAttribute("concurrency"); a != nil {
			v = strings.TrimSpace(string(a.Expr().BuildTokens(nil).Bytes()))
		}
		got[blk.Labels()[0]] = v
	}
	if len(got) != 2 || got["sink_par"] != "20" || got["sink_one"] != "" {
		t.Fatalf("sink modules' concurrency: %v, want sink_par 20 and sink_one unset (the module's 1)", got)
	}
}

// withSecrets references secrets from a source, a sink and a sink's
// transform; another sink references none.
const withSecrets = `
sources:
  db:
    connector: postgres-cdc
    topic: cdc.orders
    config: {host: db, password: "aws-sm:prod/db#password"}
sinks:
  hook:
    connector: http-webhook
    topics: [cdc.orders]
    config:
      url: https://hooks.example.com/in
      headers: {Authorization: "aws-sm:arn:aws:secretsmanager:eu-west-1:123456789012:secret:hook-AbCdEf#token"}
    transforms:
      - type: mask_field
        config: {fields: [email], replacement: "gcp-sm:projects/acme/secrets/mask/versions/3"}
  console:
    connector: stdout
    topics: [web.clicks]
    config: {format: "gcp-sm:fmt"}
`

// Each function's and service's identity may read exactly the secrets its
// part of the pipeline references: Secrets Manager ARNs on AWS (a name in
// this account and region with Secrets Manager's suffix), Secret Manager
// ids on GCP; vault: references need no grant.
func TestGenerateGrantsReferencedSecrets(t *testing.T) {
	for _, c := range []struct {
		cloud, sinks string
		want         []string
		not          []string
	}{
		{"aws", "function", []string{
			`data "aws_caller_identity" "current"`,
			`secret_arns = ["arn:${data.aws_partition.current.partition}:secretsmanager:${var.region}:${data.aws_caller_identity.current.account_id}:secret:prod/db-??????"]`,
			`secret_arns = ["arn:aws:secretsmanager:eu-west-1:123456789012:secret:hook-AbCdEf"]`,
		}, []string{"gcp-sm", "projects/acme"}},
		{"aws", "service", []string{`secret_arns = ["arn:aws:secretsmanager:eu-west-1:123456789012:secret:hook-AbCdEf"]`}, nil},
		{"gcp", "function", []string{
			`secret_ids = ["projects/acme/secrets/mask"]`,
			`secret_ids = ["projects/${var.project}/secrets/fmt"]`,
		}, []string{"secretsmanager", "prod/db"}},
	} {
		t.Run(c.cloud+"/"+c.sinks, func(t *testing.T) {
			dir, res := generateInto(t, []byte(withSecrets), Options{Cloud: c.cloud, Sinks: c.sinks})
			main := squeeze(string(res.Files["main.tf"]))
			for _, w := range c.want {
				if !strings.Contains(main, squeeze(w)) {
					t.Errorf("main.tf lacks %s", w)
				}
			}
			for _, n := range c.not {
				if strings.Contains(main, n) {
					t.Errorf("main.tf grants %s on %s", n, c.cloud)
				}
			}
			// One grant per component that references: the source and two
			// sinks here, never a shared list.
			if n := strings.Count(main, "secret_arns =") + strings.Count(main, "secret_ids ="); n != 2 {
				t.Errorf("%d grants, want 2:\n%s", n, res.Files["main.tf"])
			}
			ps, err := Check(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ps {
				t.Error(p)
			}
		})
	}
}

// warehouseSecrets is a pipeline into the three warehouse sinks with
// each one's credential (snowflake's key pair PEM, databricks' OAuth
// client secret, bigquery's service-account key) and the source's
// password as SCHEME references; %[1]s is aws-sm or gcp-sm.
const warehouseSecrets = `
sources:
  pg:
    connector: postgres-cdc
    topic: cdc.orders
    config: {host: db, password: "%[1]s:%[2]s"}
sinks:
  snowflake:
    connector: snowflake
    topics: [cdc.orders]
    config: {account: a, user: U, private_key: "%[1]s:%[3]s", database: D, schema: S, table: T}
  databricks:
    connector: databricks
    topics: [cdc.orders]
    config: {endpoint: "1.zerobus.us-west-2.cloud.databricks.com", unity_catalog_url: "https://w.cloud.databricks.com", table_name: c.s.t, client_id: id, client_secret: "%[1]s:%[4]s"}
  bigquery:
    connector: bigquery
    topics: [cdc.orders]
    config: {project_id: my-project, dataset: d, table: t, credentials_json: "%[1]s:%[5]s"}
`

// TestGenerateGrantsWarehouseSecrets: each warehouse sink's function is
// granted exactly the secret its credential references, the source
// exactly its own, on both clouds.
func TestGenerateGrantsWarehouseSecrets(t *testing.T) {
	for _, c := range []struct {
		cloud, scheme, attr string
		refs                [4]string // source, snowflake, databricks, bigquery
		want                map[string]string
	}{
		{"aws", "aws-sm", "secret_arns",
			[4]string{"prod/db#password", "prod/snowflake#private_key", "arn:aws:secretsmanager:us-west-2:123456789012:secret:dbx-Ab12Cd#client_secret", "prod/bq-writer"},
			map[string]string{
				"source_pg":       `["arn:${data.aws_partition.current.partition}:secretsmanager:${var.region}:${data.aws_caller_identity.current.account_id}:secret:prod/db-??????"]`,
				"sink_snowflake":  `["arn:${data.aws_partition.current.partition}:secretsmanager:${var.region}:${data.aws_caller_identity.current.account_id}:secret:prod/snowflake-??????"]`,
				"sink_databricks": `["arn:aws:secretsmanager:us-west-2:123456789012:secret:dbx-Ab12Cd"]`,
				"sink_bigquery":   `["arn:${data.aws_partition.current.partition}:secretsmanager:${var.region}:${data.aws_caller_identity.current.account_id}:secret:prod/bq-writer-??????"]`,
			}},
		{"gcp", "gcp-sm", "secret_ids",
			[4]string{"projects/acme/secrets/db/versions/2#password", "projects/acme/secrets/snowflake-key/versions/latest", "dbx-oauth", "projects/other/secrets/bq-writer/versions/1"},
			map[string]string{
				"source_pg":       `["projects/acme/secrets/db"]`,
				"sink_snowflake":  `["projects/acme/secrets/snowflake-key"]`,
				"sink_databricks": `["projects/${var.project}/secrets/dbx-oauth"]`,
				"sink_bigquery":   `["projects/other/secrets/bq-writer"]`,
			}},
	} {
		t.Run(c.cloud, func(t *testing.T) {
			raw := []byte(fmt.Sprintf(warehouseSecrets, c.scheme, c.refs[0], c.refs[1], c.refs[2], c.refs[3]))
			topics := ""
			if c.cloud == "aws" {
				topics = "msk" // three sinks read one topic
			}
			dir, res := generateInto(t, raw, Options{Cloud: c.cloud, Sinks: "function", Topics: topics})
			f, diags := hclwrite.ParseConfig(res.Files["main.tf"], "main.tf", hcl.InitialPos)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			got := map[string]string{}
			for _, blk := range f.Body().Blocks() {
				if blk.Type() != "module" {
					continue
				}
				if a := blk.Body().GetAttribute(c.attr); a != nil {
					got[blk.Labels()[0]] = squeeze(string(a.Expr().BuildTokens(nil).Bytes()))
				}
			}
			if len(got) != len(c.want) {
				t.Errorf("grants %v, want %v", got, c.want)
			}
			for mod, w := range c.want {
				if got[mod] != w {
					t.Errorf("%s: %s = %s, want %s", mod, c.attr, got[mod], w)
				}
			}
			ps, err := Check(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ps {
				t.Error(p)
			}
		})
	}
}

// A reference in the settings block (the Redis URL) is read by every
// function and service, so each one is granted it, besides the secrets of
// its own config.
func TestGenerateGrantsSettingsSecrets(t *testing.T) {
	for _, c := range []struct{ cloud, file, redis, hook string }{
		{"aws", "pipeline-aws.yaml",
			`"arn:${data.aws_partition.current.partition}:secretsmanager:${var.region}:${data.aws_caller_identity.current.account_id}:secret:prod/rivven/redis-??????"`,
			`"arn:${data.aws_partition.current.partition}:secretsmanager:${var.region}:${data.aws_caller_identity.current.account_id}:secret:prod/rivven/hook-??????"`},
		{"gcp", "pipeline-gcp.yaml", `"projects/${var.project}/secrets/rivven-redis-url"`, `"projects/${var.project}/secrets/rivven-hook-authorization"`},
	} {
		t.Run(c.cloud, func(t *testing.T) {
			raw, err := os.ReadFile(examplesDir + "/secret-refs/" + c.file)
			if err != nil {
				t.Fatal(err)
			}
			dir, res := generateInto(t, raw, Options{Cloud: c.cloud})
			main := squeeze(string(res.Files["main.tf"]))
			key := "secret_arns"
			if c.cloud == "gcp" {
				key = "secret_ids"
			}
			// The source: the Redis secret only; the sink: both.
			if !strings.Contains(main, squeeze(key+" = ["+c.redis+"]")) {
				t.Errorf("no grant of the Redis secret alone (the source's):\n%s", res.Files["main.tf"])
			}
			if !strings.Contains(main, squeeze(key+" = ["+c.hook+", "+c.redis+"]")) {
				t.Errorf("no grant of the hook's and the Redis secret (the sink's):\n%s", res.Files["main.tf"])
			}
			ps, err := Check(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ps {
				t.Error(p)
			}
		})
	}
}
