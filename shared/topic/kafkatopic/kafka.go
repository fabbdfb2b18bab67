// Package kafkatopic is the Kafka topic transport of rivven-connect: what
// `rivven-connect run source|sink` publishes to and consumes from when a
// pipeline has a broker.bootstrap_servers block. It implements
// topic.Producer and topic.Admin, the consumer side of
// pipeline.StreamTransport, and pipeline.FencedProducer on Kafka
// transactions (see fence.go).
package kafkatopic

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/topic"
)

// Kafka is a topic transport on a Kafka cluster. One value serves a whole
// process: a producer client (idempotent, acks=all) that also carries
// admin requests, one consuming client per partition being fetched, and
// one transactional client per fenced source.
type Kafka struct {
	// AutoCreate creates unknown topics on first use with Default (like
	// topic.Redis); without it producing to a missing topic fails with
	// topic.ErrUnknownTopic instead of waiting for broker-side creation.
	AutoCreate bool
	Default    topic.Spec

	base    []kgo.Opt // connection options every client of this transport shares
	timeout time.Duration
	cl      *kgo.Client
	adm     *kadm.Client

	mu        sync.Mutex
	closed    bool
	parts     map[string]int
	consumers map[partition]*partConsumer
	txns      map[string]*txnProducer
	commits   map[commitKey]int64
}

type partition struct {
	topic string
	p     int32
}

type commitKey struct {
	group string
	partition
}

var (
	_ topic.Producer = (*Kafka)(nil)
	_ topic.Admin    = (*Kafka)(nil)
)

// New connects to the cluster in cfg and checks that a broker answers.
// Extra franz-go options (logging, SASL, hooks) are applied after the ones
// derived from cfg, so they can override them.
func New(ctx context.Context, cfg *config.Broker, opts ...kgo.Opt) (*Kafka, error) {
	if cfg == nil || len(cfg.BootstrapServers) == 0 {
		return nil, errors.New("broker.bootstrap_servers: at least one host:port is required")
	}
	base, timeout, err := clientOpts(cfg)
	if err != nil {
		return nil, err
	}
	base = append(base, opts...)
	cl, err := kgo.NewClient(append(slices.Clone(base), producerOpts(timeout)...)...)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	pctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := cl.Ping(pctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("broker.bootstrap_servers %s: no broker answered: %w", strings.Join(cfg.BootstrapServers, ","), err)
	}
	return &Kafka{
		Default: topic.Spec{Partitions: 1, ReplicationFactor: 1},
		base:    base, timeout: timeout, cl: cl, adm: kadm.NewClient(cl),
		parts: map[string]int{}, consumers: map[partition]*partConsumer{},
		txns: map[string]*txnProducer{}, commits: map[commitKey]int64{},
	}, nil
}

// clientOpts maps the broker block onto franz-go: every seed is tried in
// turn (failover), connection_timeout_ms bounds a dial, request_timeout_ms
// bounds how long a request is retried and how long a Produce waits for
// its acknowledgements, metadata_refresh_ms is the metadata max age.
func clientOpts(cfg *config.Broker) ([]kgo.Opt, time.Duration, error) {
	ms := func(v, def int) time.Duration {
		if v <= 0 {
			v = def
		}
		return time.Duration(v) * time.Millisecond
	}
	dial := ms(cfg.ConnectionTimeoutMs, 10_000)
	timeout := ms(cfg.RequestTimeoutMs, 30_000)
	maxAge := ms(cfg.MetadataRefreshMs, 300_000)
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.BootstrapServers...),
		kgo.DialTimeout(dial),
		kgo.RetryTimeout(timeout),
		kgo.MetadataMaxAge(maxAge),
		// franz-go refuses a min age above the max age.
		kgo.MetadataMinAge(min(5*time.Second, maxAge)),
	}
	tc, err := tlsConfig(cfg.TLS)
	if err != nil {
		return nil, 0, err
	}
	if tc != nil {
		// franz-go sets ServerName per broker from the address it dials.
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	return opts, timeout, nil
}

// producerOpts are the options of every producing client: acks from all
// in-sync replicas with the idempotent producer (franz-go's default, kept
// explicit), Kafka's murmur2 key partitioning so a key lands where
// topic.Partition and every Java client put it.
func producerOpts(timeout time.Duration) []kgo.Opt {
	return []kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.ProduceRequestTimeout(min(timeout, 10*time.Second)),
	}
}

// tlsConfig builds the client TLS config; nil when TLS is off. Errors name
// the YAML key and the file, never the file's content.
func tlsConfig(t config.TLS) (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAPath != "" {
		pem, err := os.ReadFile(t.CAPath)
		if err != nil {
			return nil, fmt.Errorf("broker.tls.ca_path: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("broker.tls.ca_path %s: no PEM certificate found", t.CAPath)
		}
		tc.RootCAs = pool
	}
	if (t.CertPath == "") != (t.KeyPath == "") {
		return nil, errors.New("broker.tls: cert_path and key_path go together (client certificate and its key)")
	}
	if t.CertPath != "" {
		cert, err := tls.LoadX509KeyPair(t.CertPath, t.KeyPath)
		if err != nil {
			// The tls error describes the PEM structure, not the key.
			return nil, fmt.Errorf("broker.tls.cert_path/key_path (%s, %s): %w", t.CertPath, t.KeyPath, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Close stops every client of the transport; calling it again does
// nothing. It never fails; the error is there for transport.Transport.
func (k *Kafka) Close() error {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return nil
	}
	k.closed = true
	consumers, txns := k.consumers, k.txns
	k.consumers, k.txns = map[partition]*partConsumer{}, map[string]*txnProducer{}
	k.mu.Unlock()
	for _, c := range consumers {
		c.close()
	}
	for _, t := range txns {
		t.close(nil)
	}
	k.cl.Close()
	return nil
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// ValidateTopic rejects names Kafka refuses, before a round trip does.
func ValidateTopic(name string) error {
	if !validName.MatchString(name) || name == "." || name == ".." {
		return fmt.Errorf("invalid Kafka topic name %q: use 1-249 characters of a-z, A-Z, 0-9, '.', '_' and '-' (not \".\" or \"..\")", name)
	}
	return nil
}

// Describe implements topic.Admin.
func (k *Kafka) Describe(ctx context.Context, name string) (topic.Spec, error) {
	d, err := k.describe(ctx, name)
	if err != nil {
		return topic.Spec{}, err
	}
	return topic.Spec{Partitions: len(d.leaders), ReplicationFactor: d.replicas}, nil
}

// topicInfo is what the transport needs to know of a topic.
type topicInfo struct {
	id       [16]byte
	leaders  []int32 // by partition
	replicas int     // replication factor (of partition 0)
}

// describe asks a broker for fresh metadata: franz-go's cached metadata
// (which kadm uses) would keep reporting a topic missing for a while after
// it was created.
func (k *Kafka) describe(ctx context.Context, name string) (topicInfo, error) {
	if err := ValidateTopic(name); err != nil {
		return topicInfo{}, err
	}
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(name)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, k.cl)
	if err != nil {
		return topicInfo{}, fmt.Errorf("describe topic %q: %w", name, err)
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != name {
			continue
		}
		err := kerr.ErrorForCode(t.ErrorCode)
		switch {
		case errors.Is(err, kerr.UnknownTopicOrPartition):
			return topicInfo{}, fmt.Errorf("%w %q", topic.ErrUnknownTopic, name)
		case err != nil:
			return topicInfo{}, fmt.Errorf("describe topic %q: %w", name, err)
		case len(t.Partitions) == 0:
			// Listed while its partitions are still being created: not
			// usable yet.
			return topicInfo{}, fmt.Errorf("%w %q (no partitions yet)", topic.ErrUnknownTopic, name)
		}
		info := topicInfo{id: t.TopicID, leaders: make([]int32, len(t.Partitions))}
		for _, p := range t.Partitions {
			if p.Partition < 0 || int(p.Partition) >= len(info.leaders) {
				return topicInfo{}, fmt.Errorf("describe topic %q: partition %d out of %d", name, p.Partition, len(t.Partitions))
			}
			info.leaders[p.Partition] = p.Leader
			if p.Partition == 0 {
				info.replicas = len(p.Replicas)
			}
		}
		return info, nil
	}
	return topicInfo{}, fmt.Errorf("%w %q", topic.ErrUnknownTopic, name)
}

// Create implements topic.Admin: an existing topic is not an error.
func (k *Kafka) Create(ctx context.Context, name string, s topic.Spec) error {
	return k.create(ctx, name, s, nil)
}

func (k *Kafka) create(ctx context.Context, name string, s topic.Spec, configs map[string]*string) error {
	if err := ValidateTopic(name); err != nil {
		return err
	}
	resp, err := k.adm.CreateTopic(ctx, int32(max(s.Partitions, 1)), int16(max(s.ReplicationFactor, 1)), configs, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %q: %w", name, err)
	}
	return nil
}

// Partitions returns a topic's partition count (cached after the first
// look-up), creating the topic when AutoCreate is set.
func (k *Kafka) Partitions(ctx context.Context, name string) (int, error) {
	k.mu.Lock()
	n, ok := k.parts[name]
	k.mu.Unlock()
	if ok {
		return n, nil
	}
	s, err := k.Describe(ctx, name)
	if errors.Is(err, topic.ErrUnknownTopic) && k.AutoCreate {
		if err := k.Create(ctx, name, k.Default); err != nil {
			return 0, err
		}
		s, err = k.describeFresh(ctx, name)
	}
	if err != nil {
		return 0, err
	}
	k.mu.Lock()
	k.parts[name] = s.Partitions
	k.mu.Unlock()
	return s.Partitions, nil
}

// describeFresh describes a topic just created: brokers learn about new
// topics asynchronously, so it retries for a moment while the topic is
// still unknown.
func (k *Kafka) describeFresh(ctx context.Context, name string) (topic.Spec, error) {
	deadline := time.Now().Add(k.timeout)
	for delay := 10 * time.Millisecond; ; delay = min(delay*2, time.Second) {
		s, err := k.Describe(ctx, name)
		if !errors.Is(err, topic.ErrUnknownTopic) || time.Now().After(deadline) {
			return s, err
		}
		select {
		case <-ctx.Done():
			return topic.Spec{}, ctx.Err()
		case <-time.After(delay):
		}
	}
}

func (k *Kafka) forget(name string) {
	k.mu.Lock()
	delete(k.parts, name)
	k.mu.Unlock()
}
