package events

import (
	"encoding/json"
	"fmt"

	lambdaevents "github.com/aws/aws-lambda-go/events"
)

// ParseKinesisEvent parses a Kinesis Data Streams trigger event. The record
// data arrives base64-encoded; aws-lambda-go's types decode it.
func ParseKinesisEvent(raw []byte) (*Batch, error) {
	var ev lambdaevents.KinesisEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, fmt.Errorf("kinesis event: %w", err)
	}
	b := &Batch{Kind: TriggerKinesis, Deliveries: make([]Delivery, len(ev.Records))}
	for i := range ev.Records {
		r := &ev.Records[i]
		if r.Kinesis.SequenceNumber == "" {
			return nil, fmt.Errorf("kinesis event: Records[%d] has no sequenceNumber", i)
		}
		shard := r.EventID
		if j := indexByte(shard, ':'); j >= 0 {
			shard = shard[:j] // eventID is shardId-...:sequenceNumber
		}
		b.Deliveries[i] = Delivery{
			ID:    r.Kinesis.SequenceNumber,
			Topic: arnName(r.EventSourceArn),
			Key:   []byte(r.Kinesis.PartitionKey),
			Value: r.Kinesis.Data,
			Time:  r.Kinesis.ApproximateArrivalTimestamp.UTC(),
			Group: shard,
		}
	}
	return b, nil
}

// kinesisResponse reports the lowest failed sequence number only: Lambda
// checkpoints there and retries everything from it, so naming later records
// too would add nothing (and a stream has no per-record acknowledgement).
func (b *Batch) kinesisResponse(failed []int) lambdaevents.KinesisEventResponse {
	r := lambdaevents.KinesisEventResponse{BatchItemFailures: []lambdaevents.KinesisBatchItemFailure{}}
	lowest := ""
	for _, i := range failed {
		if s := b.Deliveries[i].ID; lowest == "" || lessDecimal(s, lowest) {
			lowest = s
		}
	}
	if lowest != "" {
		r.BatchItemFailures = append(r.BatchItemFailures, lambdaevents.KinesisBatchItemFailure{ItemIdentifier: lowest})
	}
	return r
}

// KinesisSource says which stream an emulated Kinesis event comes from.
type KinesisSource struct {
	StreamARN string // arn:aws:kinesis:<region>:<account>:stream/<name>
	Region    string
	ShardID   string // shardId-000000000000
}

// NewKinesisEvent builds the event Lambda would send for these records of
// one shard. Delivery IDs must be the records' sequence numbers.
func NewKinesisEvent(src KinesisSource, ds []Delivery) lambdaevents.KinesisEvent {
	ev := lambdaevents.KinesisEvent{Records: make([]lambdaevents.KinesisEventRecord, len(ds))}
	for i := range ds {
		d := &ds[i]
		ev.Records[i] = lambdaevents.KinesisEventRecord{
			AwsRegion:         src.Region,
			EventID:           src.ShardID + ":" + d.ID,
			EventName:         "aws:kinesis:record",
			EventSource:       sourceKinesis,
			EventSourceArn:    src.StreamARN,
			EventVersion:      "1.0",
			InvokeIdentityArn: "arn:aws:iam::000000000000:role/rivven-connect",
			Kinesis: lambdaevents.KinesisRecord{
				ApproximateArrivalTimestamp: lambdaevents.SecondsEpochTime{Time: d.Time},
				Data:                        d.Value,
				PartitionKey:                string(d.Key),
				SequenceNumber:              d.ID,
				KinesisSchemaVersion:        "1.0",
			},
		}
	}
	return ev
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}
