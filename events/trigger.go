package events

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// TriggerKind names a trigger envelope: what invoked a function.
type TriggerKind string

// The triggers the hosts understand.
const (
	TriggerSQS        TriggerKind = "sqs"
	TriggerKinesis    TriggerKind = "kinesis"
	TriggerKafka      TriggerKind = "kafka"
	TriggerPubSub     TriggerKind = "pubsub"
	TriggerCloudEvent TriggerKind = "cloudevent"
)

// Delivery is one message taken out of a trigger envelope, in the terms
// every trigger shares. The hosts turn it into a pipeline record; keeping it
// here, free of the engine, lets the envelope code be tested and reused by
// the local emulator without import cycles.
type Delivery struct {
	// ID is the message's stable identity across redeliveries: the SQS
	// messageId, "topic-partition-offset" for Kafka, the Kinesis sequence
	// number, the Pub/Sub messageId, the CloudEvent id. It is what a partial
	// failure reports and what the offset ledger deduplicates on.
	ID        string
	Topic     string // queue, stream, topic or subscription name
	Partition int32
	Offset    int64
	// Attempt is the delivery attempt (1 on first delivery) when the trigger
	// says (SQS ApproximateReceiveCount, Pub/Sub deliveryAttempt); 0 when it
	// does not (Kafka, Kinesis).
	Attempt int
	Key     []byte // message key, partition key or ordering key
	Value   []byte // the payload, base64 already undone
	Time    time.Time
	// Group is the ordering scope: SQS FIFO MessageGroupId, Pub/Sub
	// orderingKey, the Kafka topic-partition, the Kinesis shard.
	Group      string
	Attributes map[string]string // message attributes or headers (string-valued ones)
	// AWSTraceHeader is SQS's AWSTraceHeader system attribute, the X-Ray
	// trace context the sender's SDK attached.
	AWSTraceHeader string
	// Codec, when set, is the codec the payload is in whatever payload
	// format is configured (a CloudEvent delivered as a CloudEvent).
	Codec string
	// Err is set when the envelope itself is broken for this one message
	// (say, invalid base64): the record fails to decode, the batch goes on.
	Err error
}

// Batch is one trigger invocation: its deliveries in the order the trigger
// gave them, and what is needed to answer it.
type Batch struct {
	Kind       TriggerKind
	FIFO       bool // an SQS FIFO queue: the first failure fails everything after it
	Deliveries []Delivery
	kafkaKeys  []string // records-map key ("topic-partition") of each Kafka delivery
}

// Lambda event sources, as the eventSource field spells them.
const (
	sourceSQS              = "aws:sqs"
	sourceKinesis          = "aws:kinesis"
	sourceMSK              = "aws:kafka"
	sourceSelfManagedKafka = "SelfManagedKafka"
	// sourceSelfManagedKafkaOld is the spelling of older AWS docs and of
	// Lambda Powertools' test events; Lambda may still send it.
	sourceSelfManagedKafkaOld = "aws:SelfManagedKafka"
)

// supportedSources lists the eventSource values an error message names.
const supportedSources = "aws:sqs, aws:kinesis, aws:kafka, SelfManagedKafka, aws:SelfManagedKafka"

// ErrUnknownTrigger is returned for an event no trigger parser recognizes.
var ErrUnknownTrigger = errors.New("unknown trigger event")

// detect scans the top level once and returns the kind and, for SQS and
// Kinesis, the Records array, so that parsing need not scan it again.
func detect(raw []byte) (TriggerKind, []byte, error) {
	var kind TriggerKind
	var records []byte
	top := ""
	err := objectFields(raw, func(k, v []byte) error {
		switch {
		case keyIs(k, "eventSource"):
			s, err := stringOrNull(v)
			if err != nil {
				return err
			}
			top = s
			switch s {
			case sourceMSK, sourceSelfManagedKafka, sourceSelfManagedKafkaOld:
				kind = TriggerKafka
			}
		case keyIs(k, "Records"):
			records = v
		}
		return nil
	})
	switch {
	case err != nil:
		return "", nil, fmt.Errorf("trigger event is not a JSON object: %w", err)
	case kind != "":
		return kind, nil, nil
	case len(records) > 0 && records[0] == '[':
		i := skipSpace(records, 1)
		if i < len(records) && records[i] == ']' {
			return "", nil, fmt.Errorf("%w: Records is empty", ErrUnknownTrigger)
		}
		end, err := skipValue(records, i)
		if err != nil {
			return "", nil, err
		}
		var src string
		_ = objectFields(records[i:end], func(k, v []byte) error {
			if keyIs(k, "eventSource") {
				src, _ = stringOrNull(v)
			}
			return nil
		})
		switch src {
		case sourceSQS:
			return TriggerSQS, records, nil
		case sourceKinesis:
			return TriggerKinesis, records, nil
		}
		return "", nil, fmt.Errorf("%w: eventSource %q (supported: %s)", ErrUnknownTrigger, src, supportedSources)
	case top != "":
		return "", nil, fmt.Errorf("%w: eventSource %q (supported: %s)", ErrUnknownTrigger, top, supportedSources)
	}
	return "", nil, fmt.Errorf("%w: no eventSource (supported: %s)", ErrUnknownTrigger, supportedSources)
}

// ParseLambdaEvent parses the event a Lambda trigger sent, whichever it is.
func ParseLambdaEvent(raw []byte) (*Batch, error) {
	kind, records, err := detect(raw)
	if err != nil {
		return nil, err
	}
	switch kind {
	case TriggerSQS:
		return parseSQSRecords(records)
	case TriggerKinesis:
		return ParseKinesisEvent(raw)
	default:
		return ParseKafkaEvent(raw)
	}
}

// Response is the trigger's answer for a batch whose deliveries at the
// given indices (ascending) failed and must be redelivered: the partial
// batch response of SQS, Kinesis and Kafka, nil for push triggers (they
// answer with an HTTP status instead).
func (b *Batch) Response(failed []int) any {
	switch b.Kind {
	case TriggerSQS:
		return b.sqsResponse(failed)
	case TriggerKinesis:
		return b.kinesisResponse(failed)
	case TriggerKafka:
		return b.kafkaResponse(failed)
	}
	return nil
}

// ReadLambdaResponse reads a trigger's partial batch response back the way
// Lambda does and returns the indices of the deliveries that come again:
// the listed SQS messages; for Kinesis every record from the lowest listed
// sequence number on; for Kafka, per topic-partition, every record from the
// listed offset on. The local emulator uses it so that what it redelivers
// is decided by the response the function really returned.
func ReadLambdaResponse(kind TriggerKind, ds []Delivery, resp []byte) ([]int, error) {
	var r struct {
		BatchItemFailures []struct {
			ItemIdentifier json.RawMessage `json:"itemIdentifier"`
		} `json:"batchItemFailures"`
	}
	if len(resp) > 0 && string(resp) != "null" {
		if err := json.Unmarshal(resp, &r); err != nil {
			return nil, fmt.Errorf("read %s response: %w", kind, err)
		}
	}
	again := make([]bool, len(ds))
	for _, f := range r.BatchItemFailures {
		switch kind {
		case TriggerKafka:
			var id KafkaItemIdentifier
			dec := json.NewDecoder(bytes.NewReader(f.ItemIdentifier))
			dec.DisallowUnknownFields() // Lambda fails the batch for a key it does not know
			if err := dec.Decode(&id); err != nil || id.TopicPartition == "" {
				return nil, fmt.Errorf("read kafka response: itemIdentifier must be {\"topic-partition\": ..., \"offset\": ...}, got %s", f.ItemIdentifier)
			}
			found := false
			for i, d := range ds {
				if KafkaTopicPartition(d.Topic, d.Partition) == id.TopicPartition && d.Offset >= id.Offset {
					again[i], found = true, true
				}
			}
			if !found {
				// Lambda fails the whole batch for an identifier not in it.
				return nil, fmt.Errorf("read kafka response: %s offset %d is not in the batch", id.TopicPartition, id.Offset)
			}
		default:
			var id string
			if err := json.Unmarshal(f.ItemIdentifier, &id); err != nil || id == "" {
				return nil, fmt.Errorf("read %s response: itemIdentifier must be a non-empty string, got %s", kind, f.ItemIdentifier)
			}
			found := false
			for i, d := range ds {
				if d.ID == id || kind == TriggerKinesis && found {
					again[i], found = true, true
				}
			}
			if !found {
				return nil, fmt.Errorf("read %s response: %q is not in the batch", kind, id)
			}
		}
	}
	var out []int
	for i, a := range again {
		if a {
			out = append(out, i)
		}
	}
	return out, nil
}

// arnName returns the resource name at the end of an ARN: the queue of
// arn:aws:sqs:region:account:queue, the stream of ...:stream/name.
func arnName(arn string) string {
	if i := strings.LastIndexAny(arn, ":/"); i >= 0 {
		return arn[i+1:]
	}
	return arn
}

// lessDecimal compares two unsigned decimal strings of any length
// (Kinesis sequence numbers exceed 64 bits).
func lessDecimal(a, b string) bool {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// sortedKeys returns the keys of m in order, so that deliveries of map-shaped
// envelopes (Kafka's records by topic-partition) come in a stable order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func atoiOr0(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n
}

// md5Hex is the MD5 digest SQS puts in md5OfBody.
func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
