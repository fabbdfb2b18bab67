package pubsubtopic

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rivven/rivven-connect/shared/topic"
)

// MaxOrderingKeyBytes is Pub/Sub's limit on an ordering key.
const MaxOrderingKeyBytes = 1024

// Transport publishes to and administers Pub/Sub topics of one project.
// It is safe for concurrent use.
type Transport struct {
	c *pubsub.Client
	// Settings are applied to every publisher the transport opens; set them
	// before the first Produce. The zero value means the library defaults.
	Settings *pubsub.PublishSettings

	mu   sync.Mutex
	pubs map[string]*pubsub.Publisher
}

var (
	_ topic.Producer = (*Transport)(nil)
	_ topic.Admin    = (*Transport)(nil)
)

// New returns a transport over c. The caller keeps owning c; Close stops
// only the transport's publishers.
func New(c *pubsub.Client) *Transport {
	return &Transport{c: c, pubs: map[string]*pubsub.Publisher{}}
}

func (t *Transport) topicName(name string) string {
	return FullName(t.c.Project(), "topics", name)
}

// publisher returns the topic's publisher, ordering enabled: a message key
// is its ordering key.
func (t *Transport) publisher(name string) *pubsub.Publisher {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.pubs[name]
	if !ok {
		p = t.c.Publisher(t.topicName(name))
		if t.Settings != nil {
			p.PublishSettings = *t.Settings
		}
		p.EnableMessageOrdering = true
		t.pubs[name] = p
	}
	return p
}

// ProduceError names the messages of one Produce call that were not
// stored; the others were. Messages after a failed one with the same key
// fail too (Pub/Sub pauses the key so that it cannot be reordered), so a
// caller retrying the failed ones keeps the per-key order.
type ProduceError struct {
	Topic  string
	Total  int
	Failed map[int]error // index in msgs → why
}

func (e *ProduceError) Error() string {
	idx := make([]int, 0, len(e.Failed))
	for i := range e.Failed {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	var b strings.Builder
	fmt.Fprintf(&b, "pubsub: publish to %q: %d of %d message(s) failed:", e.Topic, len(e.Failed), e.Total)
	for n, i := range idx {
		if n == 3 {
			fmt.Fprintf(&b, " and %d more", len(idx)-n)
			break
		}
		fmt.Fprintf(&b, " message %d: %v;", i, e.Failed[i])
	}
	return strings.TrimSuffix(b.String(), ";")
}

// Unwrap lets errors.Is see through to the causes (topic.ErrUnknownTopic).
func (e *ProduceError) Unwrap() []error {
	out := make([]error, 0, len(e.Failed))
	for _, err := range e.Failed {
		out = append(out, err)
	}
	return out
}

// ToMessage maps a topic message to a Pub/Sub message: Key → ordering key,
// Value → data, Headers → attributes. Pub/Sub keys and attributes are
// UTF-8 strings, so binary ones are refused rather than mangled.
func ToMessage(m topic.Message) (*pubsub.Message, error) {
	pm := &pubsub.Message{Data: m.Value}
	if len(m.Key) > 0 {
		if !utf8.Valid(m.Key) || len(m.Key) > MaxOrderingKeyBytes {
			return nil, fmt.Errorf("key is not a UTF-8 string of at most %d bytes, which a Pub/Sub ordering key must be", MaxOrderingKeyBytes)
		}
		pm.OrderingKey = string(m.Key)
	}
	if len(m.Headers) > 0 {
		pm.Attributes = make(map[string]string, len(m.Headers))
		for _, h := range m.Headers {
			if h.Key == "" || !utf8.ValidString(h.Key) || !utf8.Valid(h.Value) {
				return nil, fmt.Errorf("header %q: Pub/Sub attributes are non-empty UTF-8 keys with UTF-8 values", h.Key)
			}
			pm.Attributes[h.Key] = string(h.Value)
		}
	}
	return pm, nil
}

// Produce implements topic.Producer: it publishes msgs and returns once
// every message is stored, or a *ProduceError naming those that were not.
// After a failure it resumes the failed keys, so the next Produce (the
// caller's retry) is accepted.
func (t *Transport) Produce(ctx context.Context, name string, msgs []topic.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	p := t.publisher(name)
	failed := map[int]error{}
	results := make([]*pubsub.PublishResult, len(msgs))
	for i, m := range msgs {
		pm, err := ToMessage(m)
		if err != nil {
			failed[i] = err
			continue
		}
		results[i] = p.Publish(ctx, pm)
	}
	// Send partial bundles now rather than after the delay threshold; in a
	// goroutine because Flush does not watch ctx, and Get below does.
	go p.Flush()
	paused := map[string]bool{}
	for i, r := range results {
		if r == nil {
			continue
		}
		if _, err := r.Get(ctx); err != nil {
			if status.Code(err) == codes.NotFound {
				err = fmt.Errorf("%w %q: %v", topic.ErrUnknownTopic, name, err)
			}
			failed[i] = Classify(err)
			if len(msgs[i].Key) > 0 {
				paused[string(msgs[i].Key)] = true
			}
		}
	}
	for k := range paused {
		p.ResumePublish(k)
	}
	if len(failed) > 0 {
		return &ProduceError{Topic: name, Total: len(msgs), Failed: failed}
	}
	return nil
}

// Describe implements topic.Admin. Pub/Sub topics are not partitioned and
// replicate on their own: an existing topic is one partition (with order
// per key) and a replication factor of 1 as far as callers can tell.
func (t *Transport) Describe(ctx context.Context, name string) (topic.Spec, error) {
	_, err := t.c.TopicAdminClient.GetTopic(ctx, &pubsubpb.GetTopicRequest{Topic: t.topicName(name)})
	if status.Code(err) == codes.NotFound {
		return topic.Spec{}, fmt.Errorf("%w %q", topic.ErrUnknownTopic, name)
	}
	if err != nil {
		return topic.Spec{}, fmt.Errorf("pubsub: describe topic %q: %w", name, Classify(err))
	}
	return topic.Spec{Partitions: 1, ReplicationFactor: 1}, nil
}

// Create implements topic.Admin; an existing topic is left as it is. The
// spec is ignored: Pub/Sub has neither partitions nor replication settings.
func (t *Transport) Create(ctx context.Context, name string, _ topic.Spec) error {
	_, err := t.c.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: t.topicName(name)})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("pubsub: create topic %q: %w", name, Classify(err))
	}
	return nil
}

// Delete removes a topic (its subscriptions stay, detached, as Pub/Sub
// does it); a missing topic is not an error.
func (t *Transport) Delete(ctx context.Context, name string) error {
	err := t.c.TopicAdminClient.DeleteTopic(ctx, &pubsubpb.DeleteTopicRequest{Topic: t.topicName(name)})
	if err != nil && status.Code(err) != codes.NotFound {
		return fmt.Errorf("pubsub: delete topic %q: %w", name, Classify(err))
	}
	return nil
}

// Subscription is how a sink function is fed from a topic.
type Subscription struct {
	Topic string // topic id or full name
	Name  string // subscription id or full name
	// PushEndpoint, when set, makes a push subscription that POSTs every
	// message to this HTTPS URL (a Cloud Run service); empty = pull.
	PushEndpoint string
	// PushServiceAccount is the service account whose OIDC token Pub/Sub
	// attaches to push requests (needed for authenticated Cloud Run).
	PushServiceAccount string
	// AckDeadline is how long a delivery may stay unacknowledged before
	// Pub/Sub sends it again (10s to 600s; 0 = Pub/Sub's default of 10s).
	AckDeadline time.Duration
	// Ordered delivers messages with the same ordering key in order.
	Ordered bool
	// DeadLetterTopic receives messages that were delivered
	// MaxDeliveryAttempts times without an acknowledgement.
	DeadLetterTopic     string
	MaxDeliveryAttempts int // 5 to 100; 0 = 5 (Pub/Sub's default) with a dead-letter topic
}

func (s Subscription) validate() error {
	var errs []error
	if s.Topic == "" || s.Name == "" {
		errs = append(errs, errors.New("topic and name are required"))
	}
	if s.AckDeadline != 0 && (s.AckDeadline < 10*time.Second || s.AckDeadline > 600*time.Second) {
		errs = append(errs, fmt.Errorf("ack deadline %v is outside 10s to 600s", s.AckDeadline))
	}
	if s.MaxDeliveryAttempts != 0 {
		if s.DeadLetterTopic == "" {
			errs = append(errs, errors.New("max delivery attempts needs a dead-letter topic"))
		}
		if s.MaxDeliveryAttempts < 5 || s.MaxDeliveryAttempts > 100 {
			errs = append(errs, fmt.Errorf("max delivery attempts %d is outside 5 to 100", s.MaxDeliveryAttempts))
		}
	}
	if s.PushServiceAccount != "" && s.PushEndpoint == "" {
		errs = append(errs, errors.New("a push service account needs a push endpoint"))
	}
	return errors.Join(errs...)
}

// CreateSubscription creates a subscription of a topic for a sink; an
// existing subscription is left as it is (Pub/Sub cannot change ordering
// of an existing one anyway).
func (t *Transport) CreateSubscription(ctx context.Context, s Subscription) error {
	if err := s.validate(); err != nil {
		return fmt.Errorf("pubsub: subscription %q: %w", s.Name, err)
	}
	project := t.c.Project()
	sub := &pubsubpb.Subscription{
		Name:                  FullName(project, "subscriptions", s.Name),
		Topic:                 FullName(project, "topics", s.Topic),
		AckDeadlineSeconds:    int32(s.AckDeadline / time.Second),
		EnableMessageOrdering: s.Ordered,
	}
	if s.PushEndpoint != "" {
		sub.PushConfig = &pubsubpb.PushConfig{PushEndpoint: s.PushEndpoint}
		if s.PushServiceAccount != "" {
			sub.PushConfig.AuthenticationMethod = &pubsubpb.PushConfig_OidcToken_{
				OidcToken: &pubsubpb.PushConfig_OidcToken{ServiceAccountEmail: s.PushServiceAccount},
			}
		}
	}
	if s.DeadLetterTopic != "" {
		sub.DeadLetterPolicy = &pubsubpb.DeadLetterPolicy{
			DeadLetterTopic:     FullName(project, "topics", s.DeadLetterTopic),
			MaxDeliveryAttempts: int32(s.MaxDeliveryAttempts),
		}
		// Redeliveries back off instead of hammering a failing sink until
		// the attempts are used up.
		sub.RetryPolicy = &pubsubpb.RetryPolicy{
			MinimumBackoff: durationpb.New(10 * time.Second),
			MaximumBackoff: durationpb.New(600 * time.Second),
		}
	}
	_, err := t.c.SubscriptionAdminClient.CreateSubscription(ctx, sub)
	switch status.Code(err) {
	case codes.OK, codes.AlreadyExists:
		return nil
	case codes.NotFound:
		return fmt.Errorf("pubsub: create subscription %q: %w %q", s.Name, topic.ErrUnknownTopic, s.Topic)
	}
	return fmt.Errorf("pubsub: create subscription %q: %w", s.Name, Classify(err))
}

// Close stops the transport's publishers after sending what they hold.
func (t *Transport) Close() {
	t.mu.Lock()
	pubs := t.pubs
	t.pubs = map[string]*pubsub.Publisher{}
	t.mu.Unlock()
	for _, p := range pubs {
		p.Stop()
	}
}
