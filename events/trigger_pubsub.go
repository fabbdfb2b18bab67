package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// PubSubPush is the JSON body Pub/Sub POSTs to a push endpoint (a Cloud Run
// service) for a wrapped push subscription: one message per request. The
// endpoint acknowledges with 102, 200, 201, 202 or 204; any other status is
// a negative acknowledgement and the message comes again.
//
// Pub/Sub writes messageId and publishTime in both camelCase and
// snake_case; both are read. deliveryAttempt is set only when the
// subscription has a dead-letter policy.
type PubSubPush struct {
	Message         PubSubMessage `json:"message"`
	Subscription    string        `json:"subscription"`
	DeliveryAttempt int           `json:"deliveryAttempt,omitempty"`
}

// PubSubMessage is the message of a push body (a PubsubMessage resource).
type PubSubMessage struct {
	Data           []byte            `json:"data,omitempty"` // base64 in JSON
	Attributes     map[string]string `json:"attributes,omitempty"`
	MessageID      string            `json:"messageId"`
	MessageIDSnake string            `json:"message_id,omitempty"`
	OrderingKey    string            `json:"orderingKey,omitempty"`
	PublishTime    time.Time         `json:"publishTime"`
	PublishSnake   *time.Time        `json:"publish_time,omitempty"`
}

// PubSubAttrKey is the attribute carrying an event key when the message has
// no ordering key.
const PubSubAttrKey = "rivven-key"

// ParsePubSubPush parses a push body into a one-delivery batch.
func ParsePubSubPush(raw []byte) (*Batch, error) {
	var p PubSubPush
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("pub/sub push: %w", err)
	}
	return p.Batch()
}

// Batch turns a push body into a one-delivery batch.
func (p *PubSubPush) Batch() (*Batch, error) {
	m := &p.Message
	id := m.MessageID
	if id == "" {
		id = m.MessageIDSnake
	}
	if id == "" {
		return nil, fmt.Errorf("pub/sub push: message has no messageId")
	}
	t := m.PublishTime
	if t.IsZero() && m.PublishSnake != nil {
		t = *m.PublishSnake
	}
	d := Delivery{
		ID:         id,
		Topic:      subscriptionName(p.Subscription),
		Attempt:    p.DeliveryAttempt,
		Value:      m.Data,
		Time:       t.UTC(),
		Group:      m.OrderingKey,
		Attributes: m.Attributes,
	}
	switch {
	case m.OrderingKey != "":
		d.Key = []byte(m.OrderingKey)
	case m.Attributes[PubSubAttrKey] != "":
		d.Key = []byte(m.Attributes[PubSubAttrKey])
	}
	return &Batch{Kind: TriggerPubSub, Deliveries: []Delivery{d}}, nil
}

// NewPubSubPush builds the push body Pub/Sub would POST for one delivery.
// subscription is the full name, projects/<project>/subscriptions/<name>.
func NewPubSubPush(subscription string, d Delivery) PubSubPush {
	t := d.Time.UTC()
	p := PubSubPush{
		Subscription: subscription, DeliveryAttempt: d.Attempt,
		Message: PubSubMessage{
			Data: d.Value, Attributes: d.Attributes, MessageID: d.ID, MessageIDSnake: d.ID,
			OrderingKey: d.Group, PublishTime: t, PublishSnake: &t,
		},
	}
	if len(d.Key) > 0 && d.Group == "" {
		attrs := make(map[string]string, len(d.Attributes)+1)
		for k, v := range d.Attributes {
			attrs[k] = v
		}
		attrs[PubSubAttrKey] = string(d.Key)
		p.Message.Attributes = attrs
	}
	return p
}

// PushAcked reports whether an HTTP status acknowledges a push delivery.
func PushAcked(status int) bool {
	switch status {
	case 102, 200, 201, 202, 204:
		return true
	}
	return false
}

// subscriptionName returns the last segment of projects/p/subscriptions/s.
func subscriptionName(s string) string {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return s[i+1:]
	}
	return s
}
