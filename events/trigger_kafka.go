package events

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	lambdaevents "github.com/aws/aws-lambda-go/events"
)

// KafkaEventResponse is the partial batch response of an Amazon MSK or
// self-managed Kafka event source mapping with ReportBatchItemFailures on.
// aws-lambda-go has no type for it. Unlike SQS and Kinesis, the item
// identifier is an object: the key of the event's records map
// ("<topic>-<partition>") under "topic-partition", and the offset to resume
// that partition from, as the Lambda docs' "Configuring error handling
// controls for Kafka event sources" page gives it:
//
//	{"batchItemFailures": [{"itemIdentifier": {"topic-partition": "orders-0", "offset": 42}}]}
//
// An empty list acknowledges the whole batch; an identifier Lambda does not
// recognise (another key name, a partition or offset not in the batch)
// fails the whole batch, so every partition would be replayed.
type KafkaEventResponse struct {
	BatchItemFailures []KafkaBatchItemFailure `json:"batchItemFailures"`
}

// KafkaBatchItemFailure is one entry of a KafkaEventResponse.
type KafkaBatchItemFailure struct {
	ItemIdentifier KafkaItemIdentifier `json:"itemIdentifier"`
}

// KafkaItemIdentifier names the record a partition resumes from.
type KafkaItemIdentifier struct {
	TopicPartition string `json:"topic-partition"` // the records-map key, "<topic>-<partition>"
	Offset         int64  `json:"offset"`
}

// ParseKafkaEvent parses an MSK or self-managed Kafka trigger event:
// records grouped by "topic-partition", keys and values base64-encoded,
// headers as lists of signed bytes. Partitions come in key order, each in
// offset order as Lambda sends them.
func ParseKafkaEvent(raw []byte) (*Batch, error) {
	var ev lambdaevents.KafkaEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, fmt.Errorf("kafka event: %w", err)
	}
	b := &Batch{Kind: TriggerKafka}
	for _, tp := range sortedKeys(ev.Records) {
		for _, r := range ev.Records[tp] {
			d := Delivery{
				ID:        fmt.Sprintf("%s-%d-%d", r.Topic, r.Partition, r.Offset),
				Topic:     r.Topic,
				Partition: int32(r.Partition),
				Offset:    r.Offset,
				Time:      r.Timestamp.UTC(),
				Group:     tp,
			}
			var err error
			if d.Value, err = base64.StdEncoding.DecodeString(r.Value); err != nil {
				d.Err = fmt.Errorf("kafka record %s: value is not base64: %w", d.ID, err)
			}
			if d.Key, err = base64.StdEncoding.DecodeString(r.Key); err != nil && d.Err == nil {
				d.Err = fmt.Errorf("kafka record %s: key is not base64: %w", d.ID, err)
			}
			for _, h := range r.Headers {
				for k, v := range h {
					if d.Attributes == nil {
						d.Attributes = map[string]string{}
					}
					d.Attributes[k] = string(v)
				}
			}
			b.Deliveries = append(b.Deliveries, d)
			b.kafkaKeys = append(b.kafkaKeys, tp)
		}
	}
	return b, nil
}

// kafkaResponse names, per topic-partition, the lowest failed offset:
// Lambda resumes each reported partition there, which keeps per-partition
// order; records after it that were written already are deduplicated by id.
func (b *Batch) kafkaResponse(failed []int) KafkaEventResponse {
	r := KafkaEventResponse{BatchItemFailures: []KafkaBatchItemFailure{}}
	lowest := map[string]int64{}
	var order []string
	for _, i := range failed {
		tp, off := b.kafkaKeys[i], b.Deliveries[i].Offset
		if cur, ok := lowest[tp]; !ok || off < cur {
			if !ok {
				order = append(order, tp)
			}
			lowest[tp] = off
		}
	}
	for _, tp := range order {
		r.BatchItemFailures = append(r.BatchItemFailures, KafkaBatchItemFailure{ItemIdentifier: KafkaItemIdentifier{TopicPartition: tp, Offset: lowest[tp]}})
	}
	return r
}

// KafkaSource says which cluster an emulated Kafka event comes from.
type KafkaSource struct {
	ClusterARN       string // empty: a self-managed cluster
	BootstrapServers string
}

// NewKafkaEvent builds the event Lambda would send for these records.
// Delivery Topic, Partition and Offset place each record.
func NewKafkaEvent(src KafkaSource, ds []Delivery) lambdaevents.KafkaEvent {
	ev := lambdaevents.KafkaEvent{
		EventSource: sourceMSK, EventSourceARN: src.ClusterARN, BootstrapServers: src.BootstrapServers,
		Records: map[string][]lambdaevents.KafkaRecord{},
	}
	if src.ClusterARN == "" {
		ev.EventSource = sourceSelfManagedKafka
	}
	for i := range ds {
		d := &ds[i]
		tp := KafkaTopicPartition(d.Topic, d.Partition)
		r := lambdaevents.KafkaRecord{
			Topic: d.Topic, Partition: int64(d.Partition), Offset: d.Offset,
			Timestamp:     lambdaevents.MilliSecondsEpochTime{Time: d.Time},
			TimestampType: "CREATE_TIME",
			Value:         base64.StdEncoding.EncodeToString(d.Value),
			Headers:       []map[string]lambdaevents.JSONNumberBytes{},
		}
		if len(d.Key) > 0 {
			r.Key = base64.StdEncoding.EncodeToString(d.Key)
		}
		for _, k := range sortedKeys(d.Attributes) {
			if v := d.Attributes[k]; utf8.ValidString(v) {
				r.Headers = append(r.Headers, map[string]lambdaevents.JSONNumberBytes{k: []byte(v)})
			}
		}
		ev.Records[tp] = append(ev.Records[tp], r)
	}
	return ev
}

// KafkaTopicPartition is the key Lambda groups Kafka records under.
func KafkaTopicPartition(topic string, partition int32) string {
	return topic + "-" + strconv.Itoa(int(partition))
}
