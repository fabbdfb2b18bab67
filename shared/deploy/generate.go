package deploy

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/secrets"
)

// Options say how to generate a root module.
type Options struct {
	// Cloud is aws or gcp.
	Cloud string
	// Modules is the prefix of every module source: a path relative to the
	// output directory (../../modules) or a remote address
	// (git::https://…//infra/terraform/modules?ref=v1).
	Modules string
	// ModulesFrom says, for the generated README, why Modules is what it
	// is (a checkout, --module-source, the CLI's version).
	ModulesFrom string
	// DistDir is the default of var.dist_dir (where `go tool task build`
	// wrote the function zips), relative to the output directory; empty
	// makes the variable required.
	DistDir string
	// Topics is what carries topics on AWS: sqs (default), sqs-fifo, msk
	// or kafka (self-managed). Pub/Sub on GCP. Kinesis is refused: no
	// transport publishes to it, so no source could feed its stream.
	Topics string
	// Sinks is how sinks run: function (default: Lambda or Cloud Run
	// behind the topics) or service (`rivven-connect run sink NAME`, one
	// fenced instance on the Redis Streams transport the sources publish
	// to; no cloud topics then).
	Sinks string
	// Source names the pipeline file in the generated header.
	Source string
	// Artifact names a function's build output (sink-stdout for
	// dist/aws/sink-stdout.zip and the sink-stdout image); nil uses
	// DefaultArtifact.
	Artifact func(kind, connector string) string
}

// Result is a generated root module.
type Result struct {
	// Files by name: versions.tf, variables.tf, main.tf, outputs.tf, a
	// README.md saying what the root holds and where its modules come from, and a
	// copy of the pipeline file, pipeline.yaml — with a broker block naming
	// the deployment's topics appended when the pipeline has none and the
	// sinks run as functions.
	Files map[string][]byte
	// Notes are things about the pipeline the deployment cannot fix; they
	// are also written at the top of main.tf.
	Notes []string
	// Functions, Services and Topics count what was generated (sink
	// services count as services).
	Functions, Services, Topics int
}

// PipelineFile is the name of the pipeline copy next to the .tf files.
const PipelineFile = "pipeline.yaml"

// AWSTopics lists the values of Options.Topics on AWS.
var AWSTopics = []string{"sqs", "sqs-fifo", "msk", "kafka"}

// DefaultArtifact names a function after its kind and connector the way
// functions/ names its folders (the connector's package name: letters and
// digits only).
func DefaultArtifact(kind, connector string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(connector) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return kind + "-" + b.String()
}

type topicPlan struct {
	name, label, short string
	consumers          []string
}

type sourcePlan struct {
	name, label, short string
	topic              *topicPlan
	secrets            []secrets.Ref // aws-sm: and gcp-sm: references
}

type sinkPlan struct {
	name, label, short, artifact, group string
	topics                              []*topicPlan
	secrets                             []secrets.Ref // aws-sm: and gcp-sm: references
}

type plan struct {
	topics  []*topicPlan
	sources []*sourcePlan
	sinks   []*sinkPlan
	env     []envRef
}

// Generate makes the root module that deploys p on opts.Cloud. raw is the
// pipeline file as written (with its ${VAR} references): it is copied
// next to the module and uploaded for the functions to read.
func Generate(p *config.Pipeline, raw []byte, opts Options) (*Result, error) {
	switch opts.Cloud {
	case "aws":
		if opts.Topics == "" {
			opts.Topics = "sqs"
		}
		if opts.Topics == "kinesis" {
			// The sink-function module still takes Kinesis triggers for
			// streams other producers fill; a generated deployment cannot
			// use one.
			return nil, errors.New("topics kinesis: rivven-connect run source cannot publish to Kinesis (broker.transport is kafka, sqs or pubsub), so nothing would feed the streams; use sqs, sqs-fifo, msk or kafka")
		}
		if !slices.Contains(AWSTopics, opts.Topics) {
			return nil, fmt.Errorf("topics %q: one of %s", opts.Topics, strings.Join(AWSTopics, ", "))
		}
	case "gcp":
		if opts.Topics != "" && opts.Topics != "pubsub" {
			return nil, fmt.Errorf("topics %q: GCP topics are Pub/Sub topics (pubsub)", opts.Topics)
		}
		opts.Topics = "pubsub"
	default:
		return nil, fmt.Errorf("cloud %q: aws or gcp", opts.Cloud)
	}
	switch opts.Sinks {
	case "", "function":
		opts.Sinks = "function"
	case "service":
		if opts.Cloud == "aws" && opts.Topics != "sqs" || opts.Cloud == "gcp" && opts.Topics != "pubsub" {
			return nil, errors.New("sinks service: the sinks read the Redis streams the sources write, so there are no topics to choose")
		}
	default:
		return nil, fmt.Errorf("sinks %q: function or service", opts.Sinks)
	}
	if opts.Modules == "" {
		return nil, errors.New("no module source given")
	}
	if opts.Artifact == nil {
		opts.Artifact = DefaultArtifact
	}
	pl, err := makePlan(p, raw, opts)
	if err != nil {
		return nil, err
	}
	g := &gen{p: p, pl: pl, opts: opts}
	if err := g.planBroker(); err != nil {
		return nil, err
	}
	pipelineCopy := raw
	if g.brokerYAML != "" {
		if pipelineCopy, err = appendBroker(raw, g.brokerYAML); err != nil {
			return nil, err
		}
		if q, _, err := ParsePipeline(pipelineCopy, nil); err != nil || q.Broker == nil {
			return nil, fmt.Errorf("the pipeline with the generated broker block does not load (%v); add a broker block yourself", err)
		}
	}
	if g.services() && !g.aws() && !p.Settings.Health.Enabled {
		if pipelineCopy, err = enableHealth(pipelineCopy, p.Settings.Health.Port); err != nil {
			return nil, err
		}
		if q, _, err := ParsePipeline(pipelineCopy, nil); err != nil || !q.Settings.Health.Enabled {
			return nil, fmt.Errorf("the pipeline with settings.health.enabled added does not load (%v); set settings.health.enabled: true yourself", err)
		}
	}
	g.notes()
	res := &Result{Files: map[string][]byte{}, Notes: g.notesList, Services: len(pl.sources)}
	if g.functions() {
		res.Functions, res.Topics = len(pl.sinks), len(pl.topics)
	} else {
		res.Services += len(pl.sinks)
	}
	files := map[string]*hclwrite.File{
		"versions.tf":  g.versions(),
		"variables.tf": g.variables(),
		"main.tf":      g.main(),
		"outputs.tf":   g.outputs(),
	}
	for name, f := range files {
		res.Files[name] = hclwrite.Format(f.Bytes())
	}
	res.Files[PipelineFile] = pipelineCopy
	res.Files["README.md"] = g.readme(res)
	return res, nil
}

func makePlan(p *config.Pipeline, raw []byte, opts Options) (*plan, error) {
	pl := &plan{}
	topics := map[string]*topicPlan{}
	topic := func(name, path string) (*topicPlan, error) {
		if strings.Contains(name, "${") {
			return nil, fmt.Errorf("%s: %q: a deployed topic needs a literal name, not a ${VAR} reference", path, name)
		}
		if t, ok := topics[name]; ok {
			return t, nil
		}
		t := &topicPlan{name: name}
		topics[name] = t
		return t, nil
	}
	for _, name := range p.SourceNames() {
		s := p.Sources[name]
		t, err := topic(s.Topic, "sources."+name+".topic")
		if err != nil {
			return nil, err
		}
		pl.sources = append(pl.sources, &sourcePlan{name: name, topic: t, secrets: componentSecrets(p, &s.Config, "sources."+name, s.Transforms)})
	}
	for _, name := range p.SinkNames() {
		s := p.Sinks[name]
		sp := &sinkPlan{name: name, artifact: opts.Artifact("sink", s.Connector), group: s.ConsumerGroup, secrets: componentSecrets(p, &s.Config, "sinks."+name, s.Transforms)}
		if sp.group == "" {
			sp.group = name
		}
		seen := map[string]bool{}
		for i, tn := range s.Topics {
			if seen[tn] {
				continue
			}
			seen[tn] = true
			t, err := topic(tn, fmt.Sprintf("sinks.%s.topics[%d]", name, i))
			if err != nil {
				return nil, err
			}
			t.consumers = append(t.consumers, name)
			sp.topics = append(sp.topics, t)
		}
		pl.sinks = append(pl.sinks, sp)
	}
	if len(pl.sources)+len(pl.sinks) == 0 {
		return nil, errors.New("the pipeline has no enabled source or sink to deploy")
	}
	for _, name := range sortedKeys(topics) {
		pl.topics = append(pl.topics, topics[name])
	}
	if strings.HasPrefix(opts.Topics, "sqs") && opts.Sinks == "function" {
		// A queue hands each message to one consumer: two sinks on one
		// queue would each see part of the topic.
		for _, t := range pl.topics {
			if len(t.consumers) > 1 {
				return nil, fmt.Errorf("topic %q is consumed by sinks %s, and an SQS queue hands each message to one consumer: use --topics kinesis, msk or kafka, or give each sink its own topic",
					t.name, strings.Join(t.consumers, ", "))
			}
		}
	}
	// Names: Terraform labels (letters, digits, _) and cloud resource names
	// (lowercase letters, digits, -), unique per kind.
	labels, shorts := map[string]bool{}, map[string]bool{}
	name := func(kind, s string) (label, short string) {
		label = unique(labels, kind+"_"+clean(s, '_', 40), s)
		short = unique(shorts, kind+":"+clean(s, '-', 20), s)
		return label, strings.TrimPrefix(short, kind+":")
	}
	for _, t := range pl.topics {
		t.label, t.short = name("topic", t.name)
	}
	for _, s := range pl.sources {
		s.label, s.short = name("source", s.name)
	}
	for _, s := range pl.sinks {
		s.label, s.short = name("sink", s.name)
	}
	var err error
	if pl.env, err = envRefs(raw); err != nil {
		return nil, err
	}
	return pl, nil
}

// clean lowercases s and turns every run of other characters than letters
// and digits into sep; a result longer than max is cut and given a hash of
// s, so that cut names stay distinct.
func clean(s string, sep rune, max int) string {
	var b strings.Builder
	pending := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if pending && b.Len() > 0 {
				b.WriteRune(sep)
			}
			pending = false
			b.WriteRune(r)
			continue
		}
		pending = true
	}
	out := b.String()
	if out == "" {
		out = "x"
	}
	if len(out) > max {
		out = strings.TrimRight(out[:max-5], string(sep)) + string(sep) + hash4(s)
	}
	return out
}

func hash4(s string) string {
	h := sha1.Sum([]byte(s))
	return hex.EncodeToString(h[:2])
}

// unique records name in used; a name already taken gets a hash of the
// original spelling.
func unique(used map[string]bool, name, orig string) string {
	if used[name] {
		sep := "-"
		if strings.Contains(name, "_") {
			sep = "_"
		}
		name += sep + hash4(orig)
	}
	used[name] = true
	return name
}

type envRef struct {
	name       string
	hasDefault bool
}

var envPattern = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}`)

// envRefs lists the ${VAR} references in the pipeline's values (as
// shared/config substitutes them: in scalars only, $$ escaping a $).
func envRefs(raw []byte) ([]envRef, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return nil, err
	}
	refs := map[string]bool{} // name -> every use has a default
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode {
			for _, m := range envPattern.FindAllStringSubmatch(n.Value, -1) {
				if m[0] == "$$" {
					continue
				}
				def, seen := refs[m[1]]
				refs[m[1]] = (def || !seen) && m[2] != ""
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&root)
	var out []envRef
	for _, name := range sortedKeys(refs) {
		out = append(out, envRef{name, refs[name]})
	}
	return out, nil
}

type gen struct {
	p         *config.Pipeline
	pl        *plan
	opts      Options
	notesList []string

	// brokerYAML is the broker block appended to the pipeline copy (empty:
	// the pipeline's own block, or none, wins); brokerEnv the HCL map of
	// the variables it reads, set on every function and service.
	brokerYAML, brokerEnv string
	// queuePrefix is the HCL expression of the SQS queue-name prefix.
	queuePrefix string
}

func (g *gen) aws() bool { return g.opts.Cloud == "aws" }

// transport is the broker.transport the functions and services use.
func (g *gen) transport() string {
	switch {
	case !g.aws():
		return "pubsub"
	case strings.HasPrefix(g.opts.Topics, "sqs"):
		return "sqs"
	}
	return "kafka"
}

// env is the environment of every function and service: the pipeline's
// variables and those the generated broker block reads.
func (g *gen) env() hclwrite.Tokens {
	if g.brokerEnv == "" {
		return expr("var.pipeline_env")
	}
	return expr("merge(var.pipeline_env, local.broker_env)")
}

// brokerLocals declares local.broker_env when the broker block is generated.
func (g *gen) brokerLocals(l *hclwrite.Body) {
	if g.brokerEnv != "" {
		l.AppendNewline()
		comment(l, "What the broker block appended to pipeline.yaml reads.")
		set(l, a("broker_env", expr(g.brokerEnv)))
	}
}

// functions reports whether sinks run as functions behind cloud topics.
func (g *gen) functions() bool { return g.opts.Sinks == "function" && len(g.pl.sinks) > 0 }

// services reports whether anything runs as a long-lived service.
func (g *gen) services() bool {
	return len(g.pl.sources) > 0 || g.opts.Sinks == "service" && len(g.pl.sinks) > 0
}

func (g *gen) notes() {
	n := func(format string, args ...any) { g.notesList = append(g.notesList, fmt.Sprintf(format, args...)) }
	if len(g.pl.sinks) == 0 && g.p.Broker == nil {
		n("the pipeline has no enabled sink, so no cloud topics are created and the sources publish to the Redis streams of the deployment's Redis; add the sinks, or a broker block naming topics that exist.")
	}
	if b := g.p.Broker; b != nil && b.SQS != nil && b.SQS.Region != "" && !strings.Contains(b.SQS.Region, "${") {
		n("broker.sqs.region is %s: the queues are created in var.region, so deploy to that region.", b.SQS.Region)
	}
	if b := g.p.Broker; b != nil && b.SQS != nil && (b.SQS.Endpoint != "" || b.SQS.AccountID != "") {
		n("broker.sqs sets endpoint or account_id: the sources and functions then look for the queues there, not the ones this module creates.")
	}
	if u := g.p.Settings.State.RedisURL; u != "" && u != "${REDIS_URL}" {
		n("settings.state.redis_url is set and wins over REDIS_URL, so the Redis this module creates goes unused; write ${REDIS_URL} there to use it.")
	}
	if g.functions() {
		for _, s := range g.pl.sinks {
			if _, note := g.storageOf(s); note != "" {
				n("%s", note)
			}
		}
	}
	if g.opts.Topics == "msk" || g.opts.Topics == "kafka" {
		for _, s := range g.pl.sinks {
			if len(s.topics) > 1 {
				n("sinks.%s reads %d topics and has one on-failure destination: the dead-letter queue of topic %q.", s.name, len(s.topics), s.topics[0].name)
			}
		}
	}
}

// ---- HCL helpers -----------------------------------------------------------

var hclPos = hcl.Pos{Line: 1, Column: 1}

const tokenComment = hclsyntax.TokenComment

// expr returns the tokens of an HCL expression written as source text.
func expr(src string) hclwrite.Tokens {
	f, diags := hclwrite.ParseConfig([]byte("x = "+src+"\n"), "expr", hclPos)
	if diags.HasErrors() {
		panic(fmt.Sprintf("generated expression %q: %v", src, diags))
	}
	return f.Body().GetAttribute("x").Expr().BuildTokens(nil)
}

func str(s string) hclwrite.Tokens { return hclwrite.TokensForValue(cty.StringVal(s)) }

func list(items ...hclwrite.Tokens) hclwrite.Tokens { return hclwrite.TokensForTuple(items) }

func comment(b *hclwrite.Body, lines ...string) {
	for _, l := range lines {
		b.AppendUnstructuredTokens(hclwrite.Tokens{{Type: tokenComment, Bytes: []byte(strings.TrimRight("# "+l, " ") + "\n")}})
	}
}

func block(b *hclwrite.Body, typ string, labels ...string) *hclwrite.Body {
	return b.AppendNewBlock(typ, labels).Body()
}

type attr struct {
	name string
	val  hclwrite.Tokens
}

func set(b *hclwrite.Body, attrs ...attr) {
	for _, a := range attrs {
		b.SetAttributeRaw(a.name, a.val)
	}
}

func a(name string, val hclwrite.Tokens) attr { return attr{name, val} }

// variable declares a variable; def nil makes it required.
func variable(b *hclwrite.Body, name, typ, desc string, def hclwrite.Tokens, sensitive bool) *hclwrite.Body {
	v := block(b, "variable", name)
	set(v, a("type", expr(typ)), a("description", str(desc)))
	if def != nil {
		set(v, a("default", def))
	}
	if sensitive {
		set(v, a("sensitive", expr("true")))
	}
	b.AppendNewline()
	return v
}

func (g *gen) source(module string) hclwrite.Tokens {
	m := strings.TrimSuffix(g.opts.Modules, "/")
	path := "/" + g.opts.Cloud + "/" + module
	// A remote address may end in ?ref=…: the subpath goes before it.
	if i := strings.Index(m, "?"); i >= 0 {
		return str(m[:i] + path + m[i:])
	}
	return str(m + path)
}

// ---- files -----------------------------------------------------------------

func (g *gen) versions() *hclwrite.File {
	f := hclwrite.NewEmptyFile()
	b := f.Body()
	t := block(b, "terraform")
	set(t, a("required_version", str(">= 1.6")))
	t.AppendNewline()
	rp := block(t, "required_providers")
	b.AppendNewline()
	if g.aws() {
		set(rp, a("aws", expr(`{ source = "hashicorp/aws", version = ">= 5.70, < 7.0" }`)))
		p := block(b, "provider", "aws")
		set(p, a("region", expr("var.region")))
		p.AppendNewline()
		set(block(p, "default_tags"), a("tags", expr("var.tags")))
		return f
	}
	set(rp, a("google", expr(`{ source = "hashicorp/google", version = ">= 6.0, < 8.0" }`)))
	p := block(b, "provider", "google")
	set(p, a("project", expr("var.project")), a("region", expr("var.region")), a("default_labels", expr("var.labels")))
	return f
}

func (g *gen) envNames(withDefault bool) []string {
	var out []string
	for _, r := range g.pl.env {
		if r.hasDefault == withDefault {
			out = append(out, r.name)
		}
	}
	return out
}

func (g *gen) variables() *hclwrite.File {
	f := hclwrite.NewEmptyFile()
	b := f.Body()
	if g.aws() {
		variable(b, "region", "string", "AWS region to deploy to.", nil, false)
	} else {
		variable(b, "project", "string", "Google Cloud project to deploy to.", nil, false)
		variable(b, "region", "string", "Region of the services, topics' subscriptions and Redis.", nil, false)
	}
	v := variable(b, "name_prefix", "string", "Prefix of every resource name; distinct per deployment of the pipeline.", str("rivven"), false)
	validation := block(v, "validation")
	set(validation,
		a("condition", expr(`can(regex("^[a-z][a-z0-9-]{0,19}$", var.name_prefix))`)),
		a("error_message", str("name_prefix: a lowercase letter, then up to 19 lowercase letters, digits or hyphens.")))
	if g.aws() {
		variable(b, "vpc_id", "string", "VPC of Redis, the functions and the services.", nil, false)
		variable(b, "subnet_ids", "list(string)", "Private subnets (two or more zones, with a NAT or VPC endpoints) for Redis, the functions and the services.", nil, false)
		if g.functions() {
			variable(b, "artifact_bucket", "string", "Existing S3 bucket the pipeline file is uploaded to; the functions read it from there.", nil, false)
			var def hclwrite.Tokens
			if g.opts.DistDir != "" {
				def = str(g.opts.DistDir)
			}
			variable(b, "dist_dir", "string", "Where `go tool task build` wrote the functions (aws/<kind>-<name>.zip), relative to this directory or absolute.", def, false)
		}
	} else {
		variable(b, "network", "string", "VPC network (id) Redis is reachable from.", nil, false)
		variable(b, "subnetwork", "string", "Subnetwork (id) of that network for the services' Direct VPC egress.", nil, false)
		if g.functions() {
			variable(b, "artifact_bucket", "string", "Existing Cloud Storage bucket the pipeline file is uploaded to; the functions read it from there.", nil, false)
			variable(b, "image_registry", "string", "Artifact Registry repository the function images were pushed to (REGION-docker.pkg.dev/PROJECT/REPO); each image is named after its build context in dist/gcp/.", nil, false)
			variable(b, "image_tag", "string", "Tag of the function images.", nil, false)
		}
	}
	if g.services() {
		variable(b, "service_image", "string", "Image of the services: rivven-connect as entrypoint, the pipeline file at /etc/rivven/pipeline.yaml (see infra/terraform/README.md).", nil, false)
		if g.aws() {
			variable(b, "ecr_repository_arns", "list(string)", "ECR repositories service_image is pulled from (granted to the task execution role); empty for a public registry.", expr("[]"), false)
		}
	}
	variable(b, "log_level", "string", "Log level of every component (debug, info, warn, error); empty keeps settings.log_level.", str(""), false)

	desc := "Values of the pipeline's ${VAR} references by name, as environment variables of every function and service (each loads the whole file, so each needs every reference without a default)."
	if req := g.envNames(false); len(req) > 0 {
		desc += " Without a default: " + strings.Join(req, ", ") + "."
	}
	if opt := g.envNames(true); len(opt) > 0 {
		desc += " With a default: " + strings.Join(opt, ", ") + "."
	}
	if g.aws() {
		desc += " Lambda has no secret references, so secret values go here too (encrypted at rest)."
		variable(b, "pipeline_env", "map(string)", desc, expr("{}"), true)
		if g.services() {
			variable(b, "pipeline_secrets", "map(string)", "Secret environment variables of the services: name => Secrets Manager secret ARN, filled by ECS at task start (a name here need not be in pipeline_env for the services).", expr("{}"), false)
		}
	} else {
		desc += " Secret values belong in pipeline_secrets."
		variable(b, "pipeline_env", "map(string)", desc, expr("{}"), false)
		variable(b, "pipeline_secrets", "map(string)", "Secret environment variables of every function and service: name => Secret Manager secret id (projects/P/secrets/S), latest version.", expr("{}"), false)
	}
	if g.functions() && g.opts.Topics == "msk" {
		variable(b, "msk_cluster_arn", "string", "The MSK cluster that carries the topics.", nil, false)
	}
	if g.functions() && g.opts.Topics == "kafka" || g.opts.Topics == "msk" && g.brokerEnv != "" {
		var def hclwrite.Tokens
		if g.p.Broker != nil && len(g.p.Broker.BootstrapServers) > 0 {
			var items []hclwrite.Tokens
			for _, s := range g.p.Broker.BootstrapServers {
				items = append(items, str(s))
			}
			def = list(items...)
		}
		desc := "Bootstrap servers (host:port) of the Kafka cluster that carries the topics."
		if g.brokerEnv != "" {
			desc += fmt.Sprintf(" The sources and functions take the first %d as seeds (broker.bootstrap_servers); the transport speaks PLAINTEXT, or TLS with broker.tls, so on MSK name a listener without IAM or SASL authentication.", bootstrapSeeds)
		}
		variable(b, "kafka_bootstrap_servers", "list(string)", desc, def, false)
	}
	if g.aws() {
		variable(b, "tags", "map(string)", "Tags for every resource.", expr("{}"), false)
	} else {
		variable(b, "labels", "map(string)", "Labels for every resource.", expr("{}"), false)
	}
	return f
}

func (g *gen) main() *hclwrite.File {
	f := hclwrite.NewEmptyFile()
	b := f.Body()
	src := g.opts.Source
	if src == "" {
		src = PipelineFile
	}
	comment(b, fmt.Sprintf("Generated by `rivven-connect deploy terraform --cloud %s` from %s. Do not edit:", g.opts.Cloud, src),
		"change the pipeline and generate again. Sink transforms run inside their sink and source",
		"transforms inside their source, so no transform is deployed on its own.")
	if g.functions() {
		comment(b, wrapFlush(fmt.Sprintf("%d topic(s), %d source service(s), %d sink function(s). The sources publish to the topics through broker.transport %s (the broker block of pipeline.yaml), the topics trigger the sink functions, and they dead-letter through the same transport.",
			len(g.pl.topics), len(g.pl.sources), len(g.pl.sinks), g.transport()), 90)...)
		if !g.aws() {
			comment(b, wrapFlush("A Pub/Sub topic's id is the pipeline's topic name (the transport adds no prefix), so two deployments in one project cannot share a topic name.", 90)...)
		}
	} else if g.p.Broker != nil {
		comment(b, fmt.Sprintf("%d source service(s), %d sink service(s) on the pipeline's Kafka cluster (broker block).", len(g.pl.sources), len(g.pl.sinks)))
	} else {
		comment(b, fmt.Sprintf("%d source service(s), %d sink service(s) on the Redis Streams transport.", len(g.pl.sources), len(g.pl.sinks)))
	}
	if len(g.notesList) > 0 {
		comment(b, "", "Notes:")
		for _, n := range g.notesList {
			comment(b, wrap("- "+n, 88)...)
		}
	}
	b.AppendNewline()
	if g.aws() {
		g.mainAWS(b)
	} else {
		g.mainGCP(b)
	}
	return f
}

// wrapFlush breaks s into lines of at most width characters, without
// indenting the continuation lines.
func wrapFlush(s string, width int) []string {
	lines := wrap(s, width)
	for i := range lines {
		lines[i] = strings.TrimPrefix(lines[i], "  ")
	}
	return lines
}

// wrap breaks s into lines of at most width characters.
func wrap(s string, width int) []string {
	var out []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			out = append(out, line)
			line = "  " + w
			continue
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(out, line)
}

const pipelineKey = `"${var.name_prefix}/pipeline-${substr(filesha256("${path.module}/pipeline.yaml"), 0, 12)}.yaml"`

func (g *gen) mainAWS(b *hclwrite.Body) {
	if g.functions() {
		comment(b, "The pipeline file, named by its hash: a changed file is a new object, and the",
			"functions' RIVVEN_PIPELINE changes with it, so every function starts on the new one.")
		o := block(b, "resource", "aws_s3_object", "pipeline")
		set(o, a("bucket", expr("var.artifact_bucket")), a("key", expr(pipelineKey)),
			a("source", expr(`"${path.module}/pipeline.yaml"`)), a("etag", expr(`filemd5("${path.module}/pipeline.yaml")`)))
		b.AppendNewline()
		l := block(b, "locals")
		set(l, a("pipeline", expr(`"s3://${var.artifact_bucket}/${aws_s3_object.pipeline.key}"`)))
		g.brokerLocals(l)
		b.AppendNewline()
	}

	if g.needsAccountData() {
		comment(b, "The account and partition of the Secrets Manager secrets the pipeline names.")
		block(b, "data", "aws_caller_identity", "current")
		b.AppendNewline()
		block(b, "data", "aws_partition", "current")
		b.AppendNewline()
	}
	comment(b, "Functions and services share one security group, which Redis lets in.")
	sg := block(b, "resource", "aws_security_group", "workloads")
	set(sg, a("name", expr(`"${var.name_prefix}-workloads"`)), a("description", str("rivven-connect functions and services")), a("vpc_id", expr("var.vpc_id")))
	b.AppendNewline()
	eg := block(b, "resource", "aws_vpc_security_group_egress_rule", "workloads")
	set(eg, a("security_group_id", expr("aws_security_group.workloads.id")), a("ip_protocol", str("-1")),
		a("cidr_ipv4", str("0.0.0.0/0")), a("description", str("Redis, AWS APIs and the connectors' targets")))
	b.AppendNewline()
	if g.services() {
		c := block(b, "resource", "aws_ecs_cluster", "this")
		set(c, a("name", expr("var.name_prefix")))
		b.AppendNewline()
	}

	st := block(b, "module", "state")
	set(st, a("source", g.source("state")), a("name", expr(`"${var.name_prefix}-state"`)), a("vpc_id", expr("var.vpc_id")),
		a("subnet_ids", expr("var.subnet_ids")), a("client_security_group_ids", expr("[aws_security_group.workloads.id]")))
	b.AppendNewline()

	typ := g.opts.Topics
	if typ == "msk" {
		typ = "kafka"
	}
	for _, t := range g.pl.topics {
		if !g.functions() {
			break
		}
		comment(b, fmt.Sprintf("Topic %s.", t.name))
		m := block(b, "module", t.label)
		if g.transport() == "sqs" {
			// Named as the transport looks the queue up: queue_prefix + topic.
			set(m, a("source", g.source("topic")), a("name", expr(g.queuePrefix)), a("topic", str(t.name)), a("type", str(typ)))
		} else {
			set(m, a("source", g.source("topic")), a("name", expr(fmt.Sprintf(`"${var.name_prefix}-%s"`, t.short))), a("type", str(typ)))
		}
		switch g.opts.Topics {
		case "msk":
			set(m, a("kafka_topic", str(t.name)))
		case "kafka":
			set(m, a("kafka_topic", str(t.name)), a("kafka_bootstrap_servers", expr("var.kafka_bootstrap_servers")))
		}
		b.AppendNewline()
	}
	service := func(label, short, kind, name, what string, t *topicPlan, refs []secrets.Ref) {
		comment(b, what)
		m := block(b, "module", label)
		set(m, a("source", g.source("source-service")), a("name", expr(fmt.Sprintf(`"${var.name_prefix}-%s-%s"`, kind, short))),
			a("cluster_arn", expr("aws_ecs_cluster.this.arn")), a("image", expr("var.service_image")))
		defer func() {
			if l, ok := g.secretList(refs); ok {
				// The secrets its config references, read by the connector.
				set(m, a("secret_arns", l))
			}
		}()
		if kind != "source" {
			set(m, a("kind", str(kind)))
		}
		set(m, a("connector_name", str(name)),
			a("redis_url", expr("module.state.redis_url")), a("log_level", expr("var.log_level")),
			a("environment", g.env()), a("secrets", expr("var.pipeline_secrets")))
		if t != nil && g.functions() && g.transport() == "sqs" {
			// Its topic's queue, and the dead-letter queue of events its
			// transforms reject.
			set(m, a("publish_queue_arns", expr(fmt.Sprintf("[module.%s.queue_arn, module.%[1]s.dead_letter_arn]", t.label))))
		}
		set(m, a("subnet_ids", expr("var.subnet_ids")), a("security_group_ids", expr("[aws_security_group.workloads.id]")),
			a("ecr_repository_arns", expr("var.ecr_repository_arns")))
		b.AppendNewline()
	}
	for _, s := range g.pl.sources {
		service(s.label, s.short, "source", s.name, fmt.Sprintf("Source %s (%s), publishing to %s.", s.name, g.p.Sources[s.name].Connector, s.topic.name), s.topic, s.secrets)
	}
	for _, s := range g.pl.sinks {
		if !g.functions() {
			service(s.label, s.short, "sink", s.name, fmt.Sprintf("Sink %s (%s), reading %s %s.", s.name, g.p.Sinks[s.name].Connector, topicNames(s.topics), g.serviceTransport()), nil, s.secrets)
			continue
		}
		comment(b, fmt.Sprintf("Sink %s (%s), reading %s.", s.name, g.p.Sinks[s.name].Connector, topicNames(s.topics)))
		m := block(b, "module", s.label)
		set(m, a("source", g.source("sink-function")), a("name", expr(fmt.Sprintf(`"${var.name_prefix}-sink-%s"`, s.short))),
			a("package_file", expr(fmt.Sprintf(`"${var.dist_dir}/aws/%s.zip"`, s.artifact))),
			a("pipeline", expr("local.pipeline")), a("connector", str("sinks."+s.name)),
			a("redis_url", expr("module.state.redis_url")), a("log_level", expr("var.log_level")),
			a("environment", g.env()))
		refs := func(out string) hclwrite.Tokens {
			var items []hclwrite.Tokens
			for _, t := range s.topics {
				items = append(items, expr("module."+t.label+"."+out))
			}
			return list(items...)
		}
		dlq := expr("module." + s.topics[0].label + ".dead_letter_arn")
		switch g.opts.Topics {
		case "sqs", "sqs-fifo":
			set(m, a("trigger_type", str("sqs")), a("sqs_queue_arns", refs("queue_arn")), a("publish_queue_arns", refs("dead_letter_arn")))
		case "msk":
			set(m, a("trigger_type", str("msk")), a("msk_cluster_arn", expr("var.msk_cluster_arn")), a("kafka_topics", refs("kafka_topic")),
				a("kafka_consumer_group", str(s.group)), a("dead_letter_arn", dlq))
		case "kafka":
			set(m, a("trigger_type", str("kafka")), a("kafka_bootstrap_servers", expr("var.kafka_bootstrap_servers")), a("kafka_topics", refs("kafka_topic")),
				a("kafka_consumer_group", str(s.group)), a("dead_letter_arn", dlq))
		}
		if l, ok := g.secretList(s.secrets); ok {
			// The secrets its config references: GetSecretValue on exactly those.
			set(m, a("secret_arns", l))
		}
		set(m, a("subnet_ids", expr("var.subnet_ids")), a("security_group_ids", expr("[aws_security_group.workloads.id]")))
		b.AppendNewline()
		if sg, _ := g.storageOf(s); sg != nil {
			grantAWS(b, s, sg)
		}
	}
}

// serviceTransport says where sink services read.
func (g *gen) serviceTransport() string {
	if g.p.Broker != nil {
		return "from the pipeline's Kafka cluster"
	}
	return "from the Redis streams"
}

func topicNames(ts []*topicPlan) string {
	var out []string
	for _, t := range ts {
		out = append(out, t.name)
	}
	return strings.Join(out, ", ")
}

// GCPServices are the Google APIs a GCP deployment uses, which its root
// module enables: Cloud Run (functions and services), Pub/Sub (topics,
// push subscriptions), Memorystore for Redis (state), Secret Manager (the
// Redis URL and pipeline secrets), IAM (service accounts and bindings),
// Cloud Storage (the pipeline object) and Compute Engine (the VPC network
// Redis and the services attach to).
var GCPServices = []string{
	"compute.googleapis.com", "iam.googleapis.com", "pubsub.googleapis.com", "redis.googleapis.com",
	"run.googleapis.com", "secretmanager.googleapis.com", "storage.googleapis.com",
}

func (g *gen) mainGCP(b *hclwrite.Body) {
	l := block(b, "locals")
	if g.functions() {
		set(l, a("pipeline", expr(`"gs://${var.artifact_bucket}/${google_storage_bucket_object.pipeline.name}"`)))
	}
	set(l, a("secret_env", expr(`merge(var.pipeline_secrets, { REDIS_URL = module.state.redis_url_secret_id })`)))
	g.brokerLocals(l)
	b.AppendNewline()

	comment(b, wrapFlush("The Google APIs this deployment uses, enabled in var.project: a new project has most of them off, and then nothing below can be created. They stay enabled on destroy, since other things in the project may use them.", 88)...)
	ps := block(b, "resource", "google_project_service", "apis")
	var apis []hclwrite.Tokens
	for _, api := range GCPServices {
		apis = append(apis, str(api))
	}
	set(ps, a("for_each", hclwrite.TokensForFunctionCall("toset", list(apis...))), a("project", expr("var.project")),
		a("service", expr("each.value")), a("disable_on_destroy", expr("false")))
	b.AppendNewline()
	afterAPIs := a("depends_on", expr("[google_project_service.apis]"))

	if g.functions() {
		comment(b, "The pipeline file, named by its hash: a changed file is a new object, and the",
			"functions' RIVVEN_PIPELINE changes with it, so every function starts on the new one.")
		o := block(b, "resource", "google_storage_bucket_object", "pipeline")
		set(o, a("bucket", expr("var.artifact_bucket")), a("name", expr(pipelineKey)), a("source", expr(`"${path.module}/pipeline.yaml"`)), afterAPIs)
		b.AppendNewline()
	}

	st := block(b, "module", "state")
	set(st, a("source", g.source("state")), a("name", expr(`"${var.name_prefix}-state"`)), a("project", expr("var.project")),
		a("region", expr("var.region")), a("network", expr("var.network")), afterAPIs)
	b.AppendNewline()
	for _, t := range g.pl.topics {
		if !g.functions() {
			break
		}
		comment(b, fmt.Sprintf("Topic %s.", t.name))
		m := block(b, "module", t.label)
		// The topic id is the topic's name: what broker.transport pubsub
		// publishes to.
		set(m, a("source", g.source("topic")), a("name", str(t.name)), a("project", expr("var.project")), afterAPIs)
		b.AppendNewline()
	}
	service := func(label, short, kind, name, what string, t *topicPlan, refs []secrets.Ref) {
		comment(b, what)
		m := block(b, "module", label)
		set(m, a("source", g.source("source-service")), a("name", expr(fmt.Sprintf(`"${var.name_prefix}-%s-%s"`, kind, short))),
			a("project", expr("var.project")), a("region", expr("var.region")), a("image", expr("var.service_image")))
		if l, ok := g.secretList(refs); ok {
			// The secrets its config references: their accessor, of no others.
			set(m, a("secret_ids", l))
		}
		if kind != "source" {
			set(m, a("kind", str(kind)))
		}
		set(m, a("connector_name", str(name)), a("health_port", expr(fmt.Sprint(g.p.Settings.Health.Port))),
			a("log_level", expr("var.log_level")), a("environment", g.env()), a("secret_env", expr("local.secret_env")))
		if t != nil && g.functions() {
			// Its topic, and the dead-letter topic of events its
			// transforms reject.
			set(m, a("publish_topics", expr(fmt.Sprintf("[module.%s.topic_id, module.%[1]s.dead_letter_topic_id]", t.label))))
		}
		set(m, a("network", expr("var.network")), a("subnetwork", expr("var.subnetwork")), afterAPIs)
		b.AppendNewline()
	}
	for _, s := range g.pl.sources {
		service(s.label, s.short, "source", s.name, fmt.Sprintf("Source %s (%s), publishing to %s.", s.name, g.p.Sources[s.name].Connector, s.topic.name), s.topic, s.secrets)
	}
	for _, s := range g.pl.sinks {
		if !g.functions() {
			service(s.label, s.short, "sink", s.name, fmt.Sprintf("Sink %s (%s), reading %s %s.", s.name, g.p.Sinks[s.name].Connector, topicNames(s.topics), g.serviceTransport()), nil, s.secrets)
			continue
		}
		comment(b, fmt.Sprintf("Sink %s (%s), reading %s.", s.name, g.p.Sinks[s.name].Connector, topicNames(s.topics)))
		m := block(b, "module", s.label)
		var items []hclwrite.Tokens
		for _, t := range s.topics {
			items = append(items, expr(fmt.Sprintf("{ topic = module.%s.topic_id, dead_letter_topic = module.%[1]s.dead_letter_topic_id }", t.label)))
		}
		set(m, a("source", g.source("sink-function")), a("name", expr(fmt.Sprintf(`"${var.name_prefix}-sink-%s"`, s.short))),
			a("project", expr("var.project")), a("region", expr("var.region")),
			a("image", expr(fmt.Sprintf(`"${var.image_registry}/%s:${var.image_tag}"`, s.artifact))),
			a("pipeline", expr("local.pipeline")), a("connector", str("sinks."+s.name)),
			a("log_level", expr("var.log_level")), a("environment", g.env()), a("secret_env", expr("local.secret_env")),
			a("topics", list(items...)), a("network", expr("var.network")), a("subnetwork", expr("var.subnetwork")), afterAPIs)
		if l, ok := g.secretList(s.secrets); ok {
			// The secrets its config references: their accessor, of no others.
			set(m, a("secret_ids", l))
		}
		if e, ok := catalog.Default.Lookup(catalog.Sink, g.p.Sinks[s.name].Connector); ok && e.ConcurrentWrites {
			// Its writes run in parallel: an instance serves about this
			// many times the events of one push at a time
			// (BenchmarkHandlerConcurrentPushes). Other sinks keep the
			// module's 1, as pushes would only queue behind one write.
			set(m, a("concurrency", hclwrite.TokensForValue(cty.NumberIntVal(concurrentPushes))))
		}
		b.AppendNewline()
		if sg, _ := g.storageOf(s); sg != nil {
			grantGCP(b, s, sg)
		}
	}
}

// concurrentPushes is the Cloud Run concurrency of a sink whose writes run
// in parallel.
const concurrentPushes = 20

func (g *gen) outputs() *hclwrite.File {
	f := hclwrite.NewEmptyFile()
	b := f.Body()
	out := func(name, desc, val string) {
		o := block(b, "output", name)
		set(o, a("description", str(desc)), a("value", expr(val)))
		b.AppendNewline()
	}
	if g.aws() {
		out("redis_url", "REDIS_URL of the deployment (TLS, cluster mode, no password: the security group guards it).", "module.state.redis_url")
	} else {
		out("redis_url_secret_id", "Secret Manager secret holding REDIS_URL.", "module.state.redis_url_secret_id")
	}
	for _, t := range g.pl.topics {
		if !g.functions() {
			break
		}
		switch {
		case !g.aws():
			out(t.label+"_id", "Pub/Sub topic "+t.name+".", "module."+t.label+".topic_id")
			out(t.label+"_dead_letter_subscription", "Subscription holding the dead letters of "+t.name+".", "module."+t.label+".dead_letter_subscription_id")
		case strings.HasPrefix(g.opts.Topics, "sqs"):
			out(t.label+"_queue_url", "SQS queue of topic "+t.name+".", "module."+t.label+".queue_url")
			out(t.label+"_dead_letter_url", "Dead-letter queue of topic "+t.name+".", "module."+t.label+".dead_letter_url")
		default:
			out(t.label+"_dead_letter_url", "Dead-letter queue of topic "+t.name+".", "module."+t.label+".dead_letter_url")
		}
	}
	for _, s := range g.pl.sources {
		out(s.label+"_service", "Service running source "+s.name+".", "module."+s.label+".service_name")
	}
	for _, s := range g.pl.sinks {
		switch {
		case !g.functions():
			out(s.label+"_service", "Service running sink "+s.name+".", "module."+s.label+".service_name")
		case g.aws():
			out(s.label+"_function", "Lambda function of sink "+s.name+".", "module."+s.label+".function_name")
			out(s.label+"_role", "IAM role of sink "+s.name+", for what its connector needs.", "module."+s.label+".role_name")
		default:
			out(s.label+"_service", "Cloud Run service of sink "+s.name+".", "module."+s.label+".service_name")
			out(s.label+"_service_account", "Service account of sink "+s.name+", for what its connector needs.", "module."+s.label+".service_account_email")
		}
	}
	return f
}
