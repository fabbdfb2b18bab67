package deploy

import (
	"context"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/topic/sqstopic"
)

// multiKafka is multi with its own broker block.
const multiKafka = multi + `broker:
  bootstrap_servers: [kafka-1:9092, kafka-2:9092]
`

// dotted has topics with dots, which SQS queue names cannot hold.
const dotted = `settings:
  health: {enabled: true}
sources:
  orders:
    connector: postgres-cdc
    topic: shop.orders.v1
    config: {host: db}
sinks:
  lake:
    connector: stdout
    topics: [shop.orders.v1]
`

// loadCopy loads the shipped pipeline copy the way a function or service
// does, with env as its environment.
func loadCopy(t *testing.T, raw []byte, env map[string]string) *config.Pipeline {
	t.Helper()
	p, err := config.Parse(raw, &scoped{}, config.Options{Env: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}})
	if err != nil {
		t.Fatalf("the pipeline copy does not load: %v\n%s", err, raw)
	}
	if p.Broker == nil {
		t.Fatalf("the pipeline copy has no broker block:\n%s", raw)
	}
	return p
}

// TestQueueNamesAgree proves that the queue the aws/topic module creates
// is the queue the SQS transport publishes to, for the topic and for its
// default dead-letter topic (<topic>.dlq), standard and FIFO, with topic
// names holding characters SQS refuses.
func TestQueueNamesAgree(t *testing.T) {
	ctx := context.Background()
	for _, prefix := range []string{"shop-", "", "a_b-"} {
		for _, fifo := range []bool{false, true} {
			tr, err := sqstopic.NewTransport(ctx, config.BrokerSQS{Region: "eu-west-1", QueuePrefix: prefix, FIFO: fifo}, nil)
			if err != nil {
				t.Fatal(err)
			}
			typ := map[bool]string{false: "sqs", true: "sqs-fifo"}[fifo]
			for _, topic := range []string{"orders", "shop.orders.v1", "cdc.public.Orders_2", "a:b/c d", "x-y_z"} {
				l := evalLocals(t, "aws/topic", map[string]cty.Value{
					"name": cty.StringVal(prefix), "topic": cty.StringVal(topic), "type": cty.StringVal(typ),
				}, nil)
				if got, want := l["queue_name"].AsString(), tr.QueueName(topic); got != want {
					t.Errorf("%s %q prefix %q: module queue %q, transport %q", typ, topic, prefix, got, want)
				}
				if got, want := l["dead_letter_name"].AsString(), tr.QueueName(topic+".dlq"); got != want {
					t.Errorf("%s %q prefix %q: module dead-letter queue %q, transport %q", typ, topic, prefix, got, want)
				}
				if got, want := queueName(prefix, topic, fifo), tr.QueueName(topic); got != want {
					t.Errorf("queueName(%q, %q) = %q, transport %q", prefix, topic, got, want)
				}
				if strings.Contains(l["queue_name"].AsString(), ".") != fifo {
					t.Errorf("%s %q: queue %q", typ, topic, l["queue_name"].AsString())
				}
			}
		}
	}
	// Without topic the module names the queue name, as before.
	l := evalLocals(t, "aws/topic", map[string]cty.Value{"name": cty.StringVal("x"), "type": cty.StringVal("sqs")}, nil)
	if l["queue_name"].AsString() != "x" || l["dead_letter_name"].AsString() != "x-dlq" {
		t.Errorf("without topic: %v", l)
	}
}

// TestGeneratedBrokerBlock checks that the pipeline copy carries a broker
// block for the deployment's topics, which loads with the variables the
// root module sets, and that the root module grants publishing where the
// transport publishes.
func TestGeneratedBrokerBlock(t *testing.T) {
	ctx := context.Background()
	for _, fifo := range []bool{false, true} {
		opts := Options{Cloud: "aws", Modules: "../m", Topics: map[bool]string{false: "sqs", true: "sqs-fifo"}[fifo]}
		res, err := Generate(parse(t, []byte(dotted)), []byte(dotted), opts)
		if err != nil {
			t.Fatal(err)
		}
		cp := res.Files[PipelineFile]
		if !strings.HasPrefix(string(cp), dotted) {
			t.Errorf("the user's pipeline is not kept as written:\n%s", cp)
		}
		p := loadCopy(t, cp, map[string]string{envRegion: "eu-west-1", envQueuePrefix: "shop-"})
		if b := p.Broker; b.Transport != "sqs" || b.SQS == nil || b.SQS.Region != "eu-west-1" || b.SQS.QueuePrefix != "shop-" || b.SQS.FIFO != fifo {
			t.Fatalf("%s broker %+v %+v", opts.Topics, b, b.SQS)
		}
		tr, err := sqstopic.NewTransport(ctx, *p.Broker.SQS, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The module gets the prefix the environment sets, and the topic.
		l := evalLocals(t, "aws/topic", map[string]cty.Value{"name": cty.StringVal("shop-"), "topic": cty.StringVal("shop.orders.v1"), "type": cty.StringVal(opts.Topics)}, nil)
		if got, want := l["queue_name"].AsString(), tr.QueueName("shop.orders.v1"); got != want {
			t.Errorf("module queue %q, transport %q", got, want)
		}
		main := squeeze(string(res.Files["main.tf"]))
		for _, want := range []string{
			`broker_env = { RIVVEN_BROKER_REGION = var.region, RIVVEN_BROKER_QUEUE_PREFIX = "${var.name_prefix}-" }`,
			`module "topic_shop_orders_v1" { source = "../m/aws/topic" name = "${var.name_prefix}-" topic = "shop.orders.v1" type = "` + opts.Topics + `" }`,
			`environment = merge(var.pipeline_env, local.broker_env) secrets = var.pipeline_secrets publish_queue_arns = [module.topic_shop_orders_v1.queue_arn, module.topic_shop_orders_v1.dead_letter_arn]`,
			`sqs_queue_arns = [module.topic_shop_orders_v1.queue_arn] publish_queue_arns = [module.topic_shop_orders_v1.dead_letter_arn]`,
		} {
			if !strings.Contains(main, want) {
				t.Errorf("%s main.tf lacks %q:\n%s", opts.Topics, want, res.Files["main.tf"])
			}
		}
	}

	res, err := Generate(parse(t, []byte(dotted)), []byte(dotted), Options{Cloud: "gcp", Modules: "../m"})
	if err != nil {
		t.Fatal(err)
	}
	p := loadCopy(t, res.Files[PipelineFile], map[string]string{envProject: "my-project"})
	if b := p.Broker; b.Transport != "pubsub" || b.PubSub == nil || b.PubSub.ProjectID != "my-project" {
		t.Fatalf("gcp broker %+v", b)
	}
	main := squeeze(string(res.Files["main.tf"]))
	for _, want := range []string{
		`broker_env = { RIVVEN_BROKER_PROJECT = var.project }`,
		`module "topic_shop_orders_v1" { source = "../m/gcp/topic" name = "shop.orders.v1" project = var.project depends_on = [google_project_service.apis] }`,
		`publish_topics = [module.topic_shop_orders_v1.topic_id, module.topic_shop_orders_v1.dead_letter_topic_id]`,
	} {
		if !strings.Contains(main, want) {
			t.Errorf("gcp main.tf lacks %q:\n%s", want, res.Files["main.tf"])
		}
	}

	res, err = Generate(parse(t, []byte(dotted)), []byte(dotted), Options{Cloud: "aws", Topics: "msk", Modules: "../m"})
	if err != nil {
		t.Fatal(err)
	}
	p = loadCopy(t, res.Files[PipelineFile], map[string]string{envBootstrap + "1": "b-1:9092", envBootstrap + "2": "b-2:9092", envBootstrap + "3": "b-1:9092"})
	if b := p.Broker; b.Transport != "kafka" || strings.Join(b.BootstrapServers, ",") != "b-1:9092,b-2:9092,b-1:9092" {
		t.Fatalf("msk broker %+v", b)
	}

	// Sinks on the Redis streams need no broker block.
	res, err = Generate(parse(t, []byte(dotted)), []byte(dotted), Options{Cloud: "aws", Sinks: "service", Modules: "../m"})
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Files[PipelineFile]) != dotted || strings.Contains(string(res.Files["main.tf"]), "broker_env") {
		t.Errorf("sink services got a broker block:\n%s", res.Files[PipelineFile])
	}
}

// TestUserBroker checks that a broker block in the pipeline wins when it
// fits the deployment and is refused, saying why, when it does not.
func TestUserBroker(t *testing.T) {
	withBroker := func(block string) []byte { return []byte(dotted + "broker:\n" + block) }
	res, err := Generate(parse(t, withBroker("  transport: sqs\n  sqs: {queue_prefix: shop.prod., fifo: true}\n")), withBroker("  transport: sqs\n  sqs: {queue_prefix: shop.prod., fifo: true}\n"), Options{Cloud: "aws", Topics: "sqs-fifo", Modules: "../m"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(squeeze(string(res.Files["main.tf"])), `name = "shop-prod-" topic = "shop.orders.v1"`) {
		t.Errorf("the queues are not named with the pipeline's queue_prefix:\n%s", res.Files["main.tf"])
	}
	if strings.Contains(string(res.Files["main.tf"]), "broker_env") || string(res.Files[PipelineFile]) != dotted+"broker:\n  transport: sqs\n  sqs: {queue_prefix: shop.prod., fifo: true}\n" {
		t.Error("the pipeline's broker block was changed")
	}
	for _, c := range []struct {
		name, block string
		opts        Options
		want        string
	}{
		{"kafka for sqs", "  bootstrap_servers: [k:9092]\n", Options{Cloud: "aws"}, "broker.transport kafka: the pipeline's broker block wins, and this deployment carries the topics on sqs"},
		{"sqs for msk", "  transport: sqs\n", Options{Cloud: "aws", Topics: "msk"}, "set broker.transport: kafka"},
		{"sqs on gcp", "  transport: sqs\n", Options{Cloud: "gcp"}, "set broker.transport: pubsub"},
		{"fifo mismatch", "  transport: sqs\n", Options{Cloud: "aws", Topics: "sqs-fifo"}, "broker.sqs.fifo is false and --topics sqs-fifo creates FIFO queues"},
		{"prefix from the environment", "  transport: sqs\n  sqs: {queue_prefix: \"${P}\"}\n", Options{Cloud: "aws"}, "must be literal"},
		{"pubsub for sink services", "  transport: pubsub\n  pubsub: {project_id: p}\n", Options{Cloud: "gcp", Sinks: "service"}, "consumes Kafka or the Redis streams"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.opts.Modules = "../m"
			raw := withBroker(c.block)
			_, err := Generate(parse(t, raw), raw, c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
}

// TestTopicNamesRefused covers what a transport cannot carry as the
// deployment creates it.
func TestTopicNamesRefused(t *testing.T) {
	for _, c := range []struct {
		name, raw string
		opts      Options
		want      string
	}{
		{"queues collide", "sinks:\n  a:\n    connector: stdout\n    topics: [x.y]\n  b:\n    connector: stdout\n    topics: [x-y]\n", Options{Cloud: "aws"}, `would both be "x-y"`},
		{"topic collides with a dead-letter queue", "sinks:\n  a:\n    connector: stdout\n    topics: [abc]\n  b:\n    connector: stdout\n    topics: [abc.dlq]\n", Options{Cloud: "gcp"}, `would both be "abc.dlq"`},
		{"short pubsub id", "sources:\n  a:\n    connector: datagen\n    topic: ab\nsinks:\n  s:\n    connector: stdout\n    topics: [ab]\n", Options{Cloud: "gcp"}, `topic "ab": a Pub/Sub topic id is the topic's name`},
		{"non-ascii queue", "sources:\n  a:\n    connector: datagen\n    topic: bestellungen.ä\nsinks:\n  s:\n    connector: stdout\n    topics: [bestellungen.ä]\n", Options{Cloud: "aws"}, "use an ASCII topic name"},
		{"queue name too long", "sinks:\n  s:\n    connector: stdout\n    topics: [aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n", Options{Cloud: "aws", Topics: "sqs-fifo"}, "SQS allows 80"},
		{"other dead-letter topic", "sources:\n  a:\n    connector: datagen\n    topic: orders\n    dead_letter_topic: errors\nsinks:\n  s:\n    connector: stdout\n    topics: [orders]\n", Options{Cloud: "aws"}, `sources.a.dead_letter_topic "errors"`},
		{"flow-style pipeline", "{sources: {a: {connector: datagen, topic: orders}}, sinks: {s: {connector: stdout, topics: [orders]}}}\n", Options{Cloud: "aws"}, "no broker block can be appended"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.opts.Modules = "../m"
			_, err := Generate(parse(t, []byte(c.raw)), []byte(c.raw), c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
	// The default dead-letter topic, written out, is what the deployment
	// creates; Kafka topics are left to the cluster.
	for _, c := range []struct {
		raw  string
		opts Options
	}{
		{"sources:\n  a:\n    connector: datagen\n    topic: orders\n    dead_letter_topic: orders.dlq\nsinks:\n  s:\n    connector: stdout\n    topics: [orders]\n", Options{Cloud: "aws"}},
		{"sources:\n  a:\n    connector: datagen\n    topic: orders\n    dead_letter_topic: errors\nsinks:\n  s:\n    connector: stdout\n    topics: [orders]\n", Options{Cloud: "aws", Topics: "kafka"}},
		{"sources:\n  a:\n    connector: datagen\n    topic: ab\nsinks:\n  s:\n    connector: stdout\n    topics: [ab]\n", Options{Cloud: "gcp", Sinks: "service"}},
	} {
		c.opts.Modules = "../m"
		if _, err := Generate(parse(t, []byte(c.raw)), []byte(c.raw), c.opts); err != nil {
			t.Errorf("%s: %v", c.raw, err)
		}
	}
}

// TestSourcesOnlyNote: without a sink there are no topics to create, and
// the deployment says where the sources publish instead.
func TestSourcesOnlyNote(t *testing.T) {
	raw := []byte("sources:\n  a:\n    connector: datagen\n    topic: orders\n")
	res, err := Generate(parse(t, raw), raw, Options{Cloud: "aws", Modules: "../m"})
	if err != nil {
		t.Fatal(err)
	}
	if !hasNote(res.Notes, "no enabled sink, so no cloud topics are created") || string(res.Files[PipelineFile]) != string(raw) {
		t.Errorf("notes %q, pipeline copy:\n%s", res.Notes, res.Files[PipelineFile])
	}
}
