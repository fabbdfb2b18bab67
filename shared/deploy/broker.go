package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/shared/config"
)

// The variables a generated broker block reads: the root module sets them
// on every function and service, from its own variables, so that the
// pipeline file (baked into the service image, uploaded for the
// functions) holds no deployment-specific value.
const (
	envRegion      = "RIVVEN_BROKER_REGION"
	envQueuePrefix = "RIVVEN_BROKER_QUEUE_PREFIX"
	envProject     = "RIVVEN_BROKER_PROJECT"
	envBootstrap   = "RIVVEN_BROKER_BOOTSTRAP_"
	// bootstrapSeeds is how many of var.kafka_bootstrap_servers the
	// generated block names. A list cannot come from one variable (the
	// loader substitutes scalars), and a Kafka client needs seeds only:
	// it learns the cluster from the first that answers. element() wraps,
	// so a shorter list repeats its servers.
	bootstrapSeeds = 3
)

// queueName is the SQS queue broker.transport sqs uses for a topic:
// Transport.QueueName in shared/topic/sqstopic, byte for byte (the
// aws/topic module computes the same with replace(); the tests compare all
// three).
func queueName(prefix, topic string, fifo bool) string {
	name := []byte(prefix + topic)
	for i, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			name[i] = '-'
		}
	}
	if fifo {
		return string(name) + ".fifo"
	}
	return string(name)
}

// pubsubTopicID is what Pub/Sub accepts as a topic id.
var pubsubTopicID = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._~%+-]{2,250}$`)

// planBroker decides what carries the topics at run time. A pipeline's own
// broker block wins, so it must name the transport the deployment creates
// (and, for SQS, a queue_prefix the queues can be named with). Without
// one, sink functions get a generated block for the chosen topics; sink
// services stay on the Redis Streams transport, which needs none.
func (g *gen) planBroker() error {
	b := g.p.Broker
	want := "kafka"
	switch {
	case !g.aws():
		want = "pubsub"
	case strings.HasPrefix(g.opts.Topics, "sqs"):
		want = "sqs"
	}
	if b != nil {
		have := b.Transport
		if have == "" {
			have = "kafka"
		}
		switch {
		case g.opts.Sinks == "service" && have != "kafka":
			return fmt.Errorf("broker.transport %s: with --sinks service the sinks run `rivven-connect run sink`, which consumes Kafka or the Redis streams; remove the broker block or use --sinks function", have)
		case g.opts.Sinks == "service":
		case have != want:
			return fmt.Errorf("broker.transport %s: the pipeline's broker block wins, and this deployment carries the topics on %s (--cloud %s --topics %s); set broker.transport: %s, choose the matching --topics, or remove the broker block to have one generated",
				have, g.opts.Topics, g.opts.Cloud, g.opts.Topics, want)
		case have == "sqs":
			var c config.BrokerSQS
			if b.SQS != nil {
				c = *b.SQS
			}
			if fifo := g.opts.Topics == "sqs-fifo"; c.FIFO != fifo {
				return fmt.Errorf("broker.sqs.fifo is %t and --topics %s creates %s queues: make them agree", c.FIFO, g.opts.Topics, map[bool]string{true: "FIFO", false: "standard"}[fifo])
			}
			if strings.Contains(c.QueuePrefix, "${") {
				return fmt.Errorf("broker.sqs.queue_prefix %q: the deployment names the queues with it, so it must be literal, not a ${VAR} reference", c.QueuePrefix)
			}
			// The transport replaces characters of prefix and topic alike,
			// so the module gets the prefix as the queue name will hold it.
			g.queuePrefix = string(str(queueName(c.QueuePrefix, "", false)).Bytes())
		}
	}
	if !g.functions() {
		return g.checkTopicNames()
	}
	if b == nil {
		var y strings.Builder
		y.WriteString("\n# Added by `rivven-connect deploy terraform`: the topics between the sources and\n# the sink functions are the ")
		switch want {
		case "sqs":
			y.WriteString("SQS queues the deployment creates. The services and\n# functions set these variables.\nbroker:\n  transport: sqs\n  sqs:\n")
			fmt.Fprintf(&y, "    region: \"${%s}\"\n    queue_prefix: \"${%s}\"\n", envRegion, envQueuePrefix)
			if g.opts.Topics == "sqs-fifo" {
				y.WriteString("    fifo: true\n")
			}
			g.queuePrefix = `"${var.name_prefix}-"`
			g.brokerEnv = fmt.Sprintf(`{ %s = var.region, %s = "${var.name_prefix}-" }`, envRegion, envQueuePrefix)
		case "pubsub":
			y.WriteString("Pub/Sub topics the deployment creates. The services\n# and functions set this variable.\nbroker:\n  transport: pubsub\n  pubsub:\n")
			fmt.Fprintf(&y, "    project_id: \"${%s}\"\n", envProject)
			g.brokerEnv = fmt.Sprintf(`{ %s = var.project }`, envProject)
		default:
			y.WriteString("topics of the Kafka cluster. The services and\n# functions set these variables (seed brokers: the clients find the others).\nbroker:\n  transport: kafka\n  bootstrap_servers:\n")
			var env []string
			for i := 1; i <= bootstrapSeeds; i++ {
				fmt.Fprintf(&y, "    - \"${%s%d}\"\n", envBootstrap, i)
				env = append(env, fmt.Sprintf("%s%d = element(var.kafka_bootstrap_servers, %d)", envBootstrap, i, i-1))
			}
			g.brokerEnv = "{ " + strings.Join(env, ", ") + " }"
		}
		g.brokerYAML = y.String()
	}
	if want == "sqs" && g.queuePrefix == "" {
		g.queuePrefix = `""`
	}
	if err := g.checkDeadLetterTopics(); err != nil {
		return err
	}
	return g.checkTopicNames()
}

// checkDeadLetterTopics refuses dead_letter_topic values the deployment
// has no queue or topic for: it creates <topic>.dlq for each topic (the
// default), which the transport publishes dead letters to and the
// trigger's redrive or dead-letter policy forwards to.
func (g *gen) checkDeadLetterTopics() error {
	if g.opts.Topics == "msk" || g.opts.Topics == "kafka" {
		return nil // a Kafka topic is created by the first producer (settings.topic.auto_create)
	}
	check := func(path, dlt string, topics []*topicPlan) error {
		if dlt == "" {
			return nil
		}
		for _, t := range topics {
			if dlt != t.name+".dlq" {
				return fmt.Errorf("%s.dead_letter_topic %q: the deployment creates one dead-letter queue per topic, <topic>.dlq (%s.dlq here), and grants publishing to it only; remove dead_letter_topic", path, dlt, t.name)
			}
		}
		return nil
	}
	for _, s := range g.pl.sources {
		if err := check("sources."+s.name, g.p.Sources[s.name].DeadLetterTopic, []*topicPlan{s.topic}); err != nil {
			return err
		}
	}
	for _, s := range g.pl.sinks {
		if err := check("sinks."+s.name, g.p.Sinks[s.name].DeadLetterTopic, s.topics); err != nil {
			return err
		}
	}
	return nil
}

// checkTopicNames refuses topic names the cloud cannot carry as they are,
// and topics whose queues or dead-letter topics would be the same.
func (g *gen) checkTopicNames() error {
	if !g.functions() {
		return nil
	}
	owner := map[string]string{}
	claim := func(name, what string) error {
		if prev, ok := owner[name]; ok && prev != what {
			return fmt.Errorf("%s and %s would both be %q: rename one of the topics", prev, what, name)
		}
		owner[name] = what
		return nil
	}
	for _, t := range g.pl.topics {
		var names [2]string
		switch {
		case !g.aws():
			if !pubsubTopicID.MatchString(t.name) || strings.HasPrefix(t.name, "goog") {
				return fmt.Errorf("topic %q: a Pub/Sub topic id is the topic's name, and Pub/Sub takes 3 to 255 characters, a letter first, then letters, digits and - . _ ~ %% +, not starting with goog", t.name)
			}
			names = [2]string{t.name, t.name + ".dlq"}
		case strings.HasPrefix(g.opts.Topics, "sqs"):
			for _, r := range t.name {
				if r >= 0x80 {
					return fmt.Errorf("topic %q: SQS queue names are ASCII, and the transport replaces each byte of other characters, which Terraform's replace() counts differently; use an ASCII topic name", t.name)
				}
			}
			names = [2]string{queueName("", t.name, false), queueName("", t.name+".dlq", false)}
			// SQS names have at most 80 characters. The generated prefix is
			// name_prefix + "-", at least two more.
			prefix := "x-"
			if b := g.p.Broker; b != nil && b.SQS != nil {
				prefix = b.SQS.QueuePrefix
			}
			if dl := queueName(prefix, t.name+".dlq", g.opts.Topics == "sqs-fifo"); len(dl) > 80 {
				return fmt.Errorf("topic %q: its dead-letter queue would be named %q, %d characters, and SQS allows 80; use a shorter topic name", t.name, dl, len(dl))
			}
		default:
			continue
		}
		if err := claim(names[0], fmt.Sprintf("topic %q", t.name)); err != nil {
			return err
		}
		if err := claim(names[1], fmt.Sprintf("the dead-letter topic of %q", t.name)); err != nil {
			return err
		}
	}
	return nil
}

// appendBroker returns raw with block appended at the end of its top-level
// mapping. Text is appended, not the document re-encoded, so the user's
// comments, order and ${VAR} references stay as written; the result is
// read back to make sure the block landed in the one document's mapping.
func appendBroker(raw []byte, block string) ([]byte, error) {
	refuse := errors.New("the pipeline file is not one YAML document with a block mapping at the top, so no broker block can be appended to it; add one (broker.transport) yourself")
	out := append([]byte{}, raw...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	out = append(out, block...)
	docs := 0
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, refuse
		}
		if docs++; docs > 1 || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode || doc.Content[0].Style&yaml.FlowStyle != 0 {
			return nil, refuse
		}
	}
	if docs != 1 {
		return nil, refuse
	}
	return out, nil
}
