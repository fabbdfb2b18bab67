// Package config reads the pipeline file: the YAML format of the Rivven
// Connect docs (version, broker, settings, sources, sinks, secrets) with
// ${VAR} substitution, defaults from the reference tables, and validation
// that reports every problem at once with its YAML path and line.
package config

import (
	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/shared/spec"
)

// File is a whole pipeline file.
type File struct {
	Version  string             `yaml:"version" default:"1.0" enum:"1.0" doc:"Pipeline file format version."`
	Broker   *Broker            `yaml:"broker" doc:"Broker that carries topics between sources and sinks in deployed pipelines."`
	Settings Settings           `yaml:"settings" doc:"Engine-wide settings."`
	Sources  map[string]*Source `yaml:"sources" doc:"Sources by name."`
	Sinks    map[string]*Sink   `yaml:"sinks" doc:"Sinks by name."`
	Secrets  *Secrets           `yaml:"secrets" doc:"Secret store for vault:/... references."`
}

// Validate checks what spans blocks: the broker block's keys depend on
// its transport.
func (f *File) Validate() []spec.Problem {
	if f.Broker == nil {
		return nil
	}
	ps := f.Broker.Validate()
	for i := range ps {
		ps[i].Path = spec.Join("broker", ps[i].Path)
	}
	return ps
}

// Broker is the broker block: what carries topics between sources and
// sink or transform functions once a pipeline is deployed. Kafka is the
// reference's broker; SQS queues and Pub/Sub topics serve pipelines that
// live entirely on AWS or GCP managed services.
type Broker struct {
	Transport           string        `yaml:"transport" default:"kafka" enum:"kafka,sqs,pubsub" doc:"What carries topics: kafka (bootstrap_servers), sqs (one queue per topic) or pubsub (one Pub/Sub topic per topic)."`
	BootstrapServers    []string      `yaml:"bootstrap_servers" doc:"Kafka broker addresses; tried in order with failover. Required with transport kafka."`
	MetadataRefreshMs   int           `yaml:"metadata_refresh_ms" default:"300000" min:"1000" doc:"Metadata refresh interval."`
	ConnectionTimeoutMs int           `yaml:"connection_timeout_ms" default:"10000" min:"1" doc:"Per-server connection timeout."`
	RequestTimeoutMs    int           `yaml:"request_timeout_ms" default:"30000" min:"1" doc:"Overall request deadline."`
	TLS                 TLS           `yaml:"tls" doc:"TLS to the broker."`
	SQS                 *BrokerSQS    `yaml:"sqs" doc:"SQS transport settings (transport: sqs)."`
	PubSub              *BrokerPubSub `yaml:"pubsub" doc:"Pub/Sub transport settings (transport: pubsub)."`
}

// BrokerSQS is broker.sqs: each topic is a queue named queue_prefix + the
// topic, with characters SQS does not allow in names replaced by '-'.
type BrokerSQS struct {
	Region      string `yaml:"region" doc:"AWS region; the default chain (AWS_REGION, profile) when empty."`
	Endpoint    string `yaml:"endpoint" doc:"Custom SQS endpoint (tests, VPC endpoints)."`
	QueuePrefix string `yaml:"queue_prefix" doc:"Prefix of every queue name, e.g. the pipeline name, so pipelines in one account do not share queues."`
	FIFO        bool   `yaml:"fifo" default:"false" doc:"Use FIFO queues (name + .fifo): the event key is the message group, so order per key is kept."`
	AccountID   string `yaml:"account_id" doc:"Account that owns the queues, when not the caller's."`
}

// BrokerPubSub is broker.pubsub: each topic is a Pub/Sub topic of that
// name in project_id, and the event key is the ordering key, so
// subscriptions with message ordering keep order per key.
type BrokerPubSub struct {
	ProjectID       string `yaml:"project_id" required:"true" doc:"Google Cloud project of the topics."`
	CredentialsPath string `yaml:"credentials_path" doc:"Service account key file; Application Default Credentials when empty."`
	EmulatorHost    string `yaml:"emulator_host" doc:"host:port of a Pub/Sub emulator (plaintext, no authentication); PUBSUB_EMULATOR_HOST works too."`
}

// Validate checks that the block for the chosen transport is there.
func (b *Broker) Validate() []spec.Problem {
	var ps []spec.Problem
	switch b.Transport {
	case "", "kafka":
		if len(b.BootstrapServers) == 0 {
			ps = append(ps, spec.Problem{Path: "bootstrap_servers", Message: "required with transport kafka (host:port of one or more brokers)"})
		}
	case "pubsub":
		if b.PubSub == nil {
			ps = append(ps, spec.Problem{Path: "pubsub", Message: "required with transport pubsub (at least project_id)"})
		}
	}
	if b.Transport != "sqs" && b.SQS != nil {
		ps = append(ps, spec.Problem{Path: "sqs", Message: "only used with transport sqs"})
	}
	if b.Transport != "pubsub" && b.PubSub != nil {
		ps = append(ps, spec.Problem{Path: "pubsub", Message: "only used with transport pubsub"})
	}
	return ps
}

// TLS configures client TLS.
type TLS struct {
	Enabled  bool   `yaml:"enabled" default:"false" doc:"Enable TLS."`
	CertPath string `yaml:"cert_path" doc:"Client certificate (PEM)."`
	KeyPath  string `yaml:"key_path" doc:"Client key (PEM)."`
	CAPath   string `yaml:"ca_path" doc:"CA bundle (PEM); system roots when empty."`
}

// Settings is the settings block.
type Settings struct {
	Topic                TopicSettings `yaml:"topic" doc:"How topics are created and checked."`
	Retry                Retry         `yaml:"retry" doc:"Retry policy for connector operations."`
	Health               Health        `yaml:"health" doc:"Health endpoint."`
	Metrics              Metrics       `yaml:"metrics" doc:"Prometheus metrics endpoint."`
	UI                   UI            `yaml:"ui" doc:"Live web dashboard of local and run (the --ui flag turns it on too)."`
	LogLevel             string        `yaml:"log_level" default:"info" enum:"debug,info,warn,error" doc:"Log level."`
	State                State         `yaml:"state" doc:"Where offsets and shared state live."`
	MaxConsecutiveErrors int           `yaml:"max_consecutive_errors" default:"10" min:"1" max:"10000" doc:"Consecutive failed sink writes after which the sink goes to Failed and stops consuming."`
}

// TopicSettings is settings.topic.
type TopicSettings struct {
	AutoCreate               bool `yaml:"auto_create" default:"true" doc:"Create missing topics on startup."`
	DefaultPartitions        int  `yaml:"default_partitions" default:"1" min:"1" max:"10000" doc:"Partitions of new topics."`
	DefaultReplicationFactor int  `yaml:"default_replication_factor" default:"1" min:"1" max:"32" doc:"Replication factor of new topics."`
	RequireTopicExists       bool `yaml:"require_topic_exists" default:"true" doc:"Fail at startup when a topic is missing and auto_create is off."`
	ValidateExisting         bool `yaml:"validate_existing" default:"false" doc:"Warn when an existing topic's settings differ."`
}

// Retry is settings.retry.
type Retry struct {
	MaxRetries        int     `yaml:"max_retries" default:"10" min:"0" doc:"Retries before an operation fails."`
	InitialBackoffMs  int     `yaml:"initial_backoff_ms" default:"100" min:"1" doc:"First backoff."`
	MaxBackoffMs      int     `yaml:"max_backoff_ms" default:"30000" min:"1" doc:"Backoff cap."`
	BackoffMultiplier float64 `yaml:"backoff_multiplier" default:"2" min:"1" doc:"Backoff growth per retry."`
	JitterFactor      float64 `yaml:"jitter_factor" default:"0.1" min:"0" max:"1" doc:"Random spread applied to each backoff."`
}

// Health is settings.health.
type Health struct {
	Enabled bool   `yaml:"enabled" default:"false" doc:"Serve the health endpoint."`
	Port    int    `yaml:"port" default:"8080" min:"0" max:"65535" doc:"Health port."`
	Path    string `yaml:"path" default:"/health" doc:"Health path."`
}

// Metrics is settings.metrics.
type Metrics struct {
	Enabled bool `yaml:"enabled" default:"false" doc:"Serve Prometheus metrics."`
	Port    int  `yaml:"port" default:"9091" min:"0" max:"65535" doc:"Metrics port (path /metrics)."`
	Pprof   bool `yaml:"pprof" default:"false" doc:"Also serve Go's runtime profiles on the metrics port at /debug/pprof/ (go tool pprof http://HOST:PORT/debug/pprof/profile), to find where a running pipeline spends CPU or memory. They reveal code paths and stacks: keep the port private."`
}

// UI is settings.ui.
type UI struct {
	Enabled bool   `yaml:"enabled" default:"false" doc:"Serve the dashboard: the pipeline as a graph with live rates, lag, batch latency, errors, dead letters, breakers, snapshot progress and recent events (secrets blanked)."`
	Address string `yaml:"address" default:"127.0.0.1:8088" doc:"Address the dashboard listens on (host:port; the page shows event samples, so keep it on localhost unless it is protected)."`
}

// State is settings.state.
type State struct {
	RedisURL string `yaml:"redis_url" secret:"true" doc:"Redis URL (redis:// or rediss://). Empty: REDIS_URL, else an embedded in-process store."`
}

// Source is one entry of sources.
type Source struct {
	Connector         string       `yaml:"connector" required:"true" doc:"Source connector name."`
	Topic             string       `yaml:"topic" required:"true" doc:"Topic the source publishes to."`
	TopicConfig       *TopicConfig `yaml:"topic_config" doc:"Per-source topic overrides."`
	Config            yaml.Node    `yaml:"config" doc:"Connector configuration."`
	Transforms        Transforms   `yaml:"transforms" doc:"Transforms applied before publishing."`
	RateLimit         *RateLimit   `yaml:"rate_limit" doc:"Throughput limit."`
	Enabled           bool         `yaml:"enabled" default:"true" doc:"Run this source."`
	DeadLetterTopic   string       `yaml:"dead_letter_topic" doc:"Where events that fail transforms go."`
	SchemaRegistryURL string       `yaml:"schema_registry_url" doc:"Refused: the source's topic carries Rivven events; kafka-sink and kafka-source take schema_registry_url in their config."`
}

// TopicConfig is sources.<name>.topic_config.
type TopicConfig struct {
	Partitions        int   `yaml:"partitions" min:"1" max:"10000" doc:"Partitions (default: settings.topic.default_partitions)."`
	ReplicationFactor int   `yaml:"replication_factor" min:"1" max:"32" doc:"Replication factor."`
	AutoCreate        *bool `yaml:"auto_create" doc:"Override settings.topic.auto_create."`
}

// Sink is one entry of sinks.
type Sink struct {
	Connector            string         `yaml:"connector" required:"true" doc:"Sink connector name."`
	Topics               []string       `yaml:"topics" required:"true" doc:"Topics to consume."`
	ConsumerGroup        string         `yaml:"consumer_group" doc:"Consumer group (default: the sink's name)."`
	Config               yaml.Node      `yaml:"config" doc:"Connector configuration."`
	Transforms           Transforms     `yaml:"transforms" doc:"Transforms applied before writing."`
	RateLimit            *RateLimit     `yaml:"rate_limit" doc:"Throughput limit."`
	StartOffset          string         `yaml:"start_offset" default:"earliest" doc:"Where a new consumer group starts: earliest, latest, or an RFC 3339 timestamp."`
	OffsetCommitInterval int            `yaml:"offset_commit_interval" default:"100" min:"1" doc:"Commit a partition's offset once N records were consumed since the last commit (and whenever the sink caught up, before a redelivery wait, and on stop)."`
	Enabled              bool           `yaml:"enabled" default:"true" doc:"Run this sink."`
	DeadLetterTopic      string         `yaml:"dead_letter_topic" doc:"Where events that cannot be written or transformed go (default: <topic>.dlq)."`
	CircuitBreaker       CircuitBreaker `yaml:"circuit_breaker" doc:"Circuit breaker shared by every instance of this sink (its state lives in Redis)."`
	DedupTTLSecs         int            `yaml:"dedup_ttl_secs" default:"3600" min:"60" max:"1209600" doc:"How long a written message ID is remembered so that its redelivery is dropped (unordered queues such as SQS and Pub/Sub); must exceed the trigger's redelivery window."`
}

// CircuitBreaker is sinks.<name>.circuit_breaker. The ranges are the
// reference's and are checked at load, so a typo cannot make a breaker
// that never opens or never closes.
type CircuitBreaker struct {
	Enabled          bool `yaml:"enabled" default:"true" doc:"Enable the circuit breaker."`
	FailureThreshold int  `yaml:"failure_threshold" default:"5" min:"1" max:"100" doc:"Consecutive failed writes, counted across all instances, that open the circuit."`
	ResetTimeoutSecs int  `yaml:"reset_timeout_secs" default:"30" min:"1" max:"3600" doc:"Seconds the circuit stays open before one probe batch is let through."`
	SuccessThreshold int  `yaml:"success_threshold" default:"2" min:"1" max:"10" doc:"Successful probes in a row that close the circuit again."`
}

// RateLimit is a token bucket: capacity events_per_second + burst.
type RateLimit struct {
	EventsPerSecond float64 `yaml:"events_per_second" required:"true" min:"0" doc:"Sustained rate; 0 means no limit."`
	BurstSize       int     `yaml:"burst_size" min:"0" doc:"Extra burst (sources)."`
	BurstCapacity   int     `yaml:"burst_capacity" min:"0" doc:"Extra burst (sinks)."`
	MaxInFlight     int     `yaml:"max_in_flight" min:"0" doc:"Sinks: most batches read and not yet answered at once, across partitions (0 = one per partition). Sources publish one batch at a time."`
}

// Secrets is the secrets block.
type Secrets struct {
	Provider string    `yaml:"provider" required:"true" enum:"env,file,vault,aws-secrets-manager,gcp-secret-manager" doc:"Secret store."`
	Config   yaml.Node `yaml:"config" doc:"Provider settings."`
}

// Transform is one transform step. In YAML it is either a list entry
// {type|transform, config, name} or a named map entry name: {type, config}.
type Transform struct {
	Name   string    `yaml:"name" doc:"Step name (the map key in the named form)."`
	Type   string    `yaml:"type" doc:"Transform type, e.g. ExtractNewRecordState or extract_new_record_state."`
	Alias  string    `yaml:"transform" doc:"Same as type."`
	Config yaml.Node `yaml:"config" doc:"Transform configuration."`
	// Predicate restricts the transform to matching events; it is checked
	// as a condition.Predicate.
	Predicate yaml.Node `yaml:"predicate" doc:"Apply only to events matching this predicate: table(s), schema(s), database, operations, field_exists, field_value, condition, negate."`

	// Node is where the step is in the file, for errors.
	Node *yaml.Node `yaml:"-"`
	// Path is its YAML path.
	Path string `yaml:"-"`
}

// Kind returns the transform type, whichever key spelled it.
func (t *Transform) Kind() string {
	if t.Type != "" {
		return t.Type
	}
	return t.Alias
}

// Transforms accepts both forms of the transforms block.
type Transforms []*Transform

// UnmarshalYAML decodes the list or the named-map form.
func (ts *Transforms) UnmarshalYAML(n *yaml.Node) error {
	*ts = nil
	switch n.Kind {
	case yaml.SequenceNode:
		for _, c := range n.Content {
			t := &Transform{Node: c}
			if err := c.Decode(t); err != nil {
				return err
			}
			*ts = append(*ts, t)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			t := &Transform{Name: n.Content[i].Value, Node: n.Content[i+1]}
			if err := n.Content[i+1].Decode(t); err != nil {
				return err
			}
			*ts = append(*ts, t)
		}
	}
	return nil
}

// transformFields describes one step (both forms share it).
var transformFields = spec.FieldsOf(reflectType[Transform]())
