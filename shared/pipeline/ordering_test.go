package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/topic"
)

func orderedEvent(n string) string {
	return `{"event_type":"insert","stream":"orders","timestamp":"2025-01-01T00:00:00Z","data":{"n":"` + n + `"},"metadata":{}}`
}

// written lists the "n" of every event the sink got, in order.
func written(t *testing.T, s *countingSink) string {
	t.Helper()
	var out []string
	for _, e := range s.got {
		row, err := e.Row()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(row["n"]))
	}
	return strings.Join(out, " ")
}

// failingProducer refuses every dead letter.
type failingProducer struct{}

func (failingProducer) Produce(context.Context, string, []topic.Message) error {
	return errors.New("dlq broker down")
}

// On every ordered trigger, once a record of a group fails, the later
// records of that group are not written and are reported failed; the
// other groups go on.
func TestOrderedTriggersHoldBackTheRestOfAFailedGroup(t *testing.T) {
	// a1 a2(broken) a3 in one group, b1 b2 in another; a and b interleaved.
	type msg struct {
		group, n string
		part     int32
		off      int64
	}
	msgs := []msg{{"a", "a1", 0, 10}, {"b", "b1", 1, 20}, {"a", "a2", 0, 11}, {"b", "b2", 1, 21}, {"a", "a3", 0, 12}}
	body := func(m msg) string {
		if m.n == "a2" {
			return `{"event_type":`
		}
		return orderedEvent(m.n)
	}
	deliveries := func() []events.Delivery {
		var ds []events.Delivery
		for _, m := range msgs {
			ds = append(ds, events.Delivery{ID: "id-" + m.n, Topic: "orders", Partition: m.part, Offset: m.off, Attempt: 1,
				Value: []byte(body(m)), Group: m.group, Time: time.Unix(1700000000, 0)})
		}
		return ds
	}
	kinesis := func() []events.Delivery { // one shard per batch: group a only
		var ds []events.Delivery
		for i, d := range deliveries() {
			if d.Group == "a" {
				d.ID = fmt.Sprintf("4959%052d", i)
				ds = append(ds, d)
			}
		}
		return ds
	}
	cases := []struct {
		name, wantWritten, wantResp, failedID string
		event                                 any
	}{
		{"sqs-fifo", "a1 b1 b2", `{"batchItemFailures":[{"itemIdentifier":"id-a2"},{"itemIdentifier":"id-a3"}]}`, "id-a2",
			events.NewSQSEvent(events.SQSSource{QueueARN: "arn:aws:sqs:eu-west-1:1:orders.fifo"}, deliveries())},
		{"kafka", "a1 b1 b2", `{"batchItemFailures":[{"itemIdentifier":{"topic-partition":"orders-0","offset":11}}]}`, "orders-0-11",
			events.NewKafkaEvent(events.KafkaSource{ClusterARN: "arn:aws:kafka:eu-west-1:1:cluster/c/1"}, deliveries())},
		{"kinesis", "a1", `{"batchItemFailures":[{"itemIdentifier":"4959` + fmt.Sprintf("%052d", 2) + `"}]}`, "4959" + fmt.Sprintf("%052d", 2),
			events.NewKinesisEvent(events.KinesisSource{StreamARN: "arn:aws:kinesis:eu-west-1:1:stream/orders", ShardID: "shardId-000000000000"}, kinesis())},
	}
	for _, c := range cases {
		for _, dlq := range []string{"none", "failing"} {
			t.Run(c.name+"/dlq="+dlq, func(t *testing.T) {
				raw, _ := json.Marshal(c.event)
				sink := &countingSink{}
				var logs bytes.Buffer
				h := &Handler{Name: "out", Sink: sink, Log: slog.New(slog.NewTextHandler(&logs, nil))}
				if dlq == "failing" {
					h.DeadLetters = failingProducer{}
				}
				a := &Adapter{Handler: h, Topics: []string{"orders"}}
				resp, err := a.InvokeLambda(context.Background(), raw)
				if err != nil {
					t.Fatal(err)
				}
				if got := written(t, sink); got != c.wantWritten {
					t.Errorf("sink got %q, want %q", got, c.wantWritten)
				}
				if string(resp) != c.wantResp {
					t.Errorf("response %s\nwant     %s", resp, c.wantResp)
				}
				// Why is in the log, with the id.
				if !strings.Contains(logs.String(), c.failedID+": decode: payload is not valid JSON") {
					t.Errorf("the failed record's id is not logged:\n%s", logs.String())
				}
			})
		}
	}
}

// A standard SQS queue promises no order: a failure holds nothing back,
// even for messages that carry a MessageGroupId. The local emulator, which
// redelivers a partition from its first failure, keeps the order.
func TestStandardQueueIsUnorderedUnlessTheAdapterPromisesOrder(t *testing.T) {
	ds := []events.Delivery{
		{ID: "m1", Value: []byte(orderedEvent("1")), Group: "g", Attempt: 1},
		{ID: "m2", Value: []byte(`nope`), Group: "g", Attempt: 1},
		{ID: "m3", Value: []byte(orderedEvent("3")), Group: "g", Attempt: 1},
	}
	raw, _ := json.Marshal(events.NewSQSEvent(events.SQSSource{QueueARN: "arn:aws:sqs:eu-west-1:1:orders"}, ds))
	for _, ordered := range []bool{false, true} {
		sink := &countingSink{}
		a := &Adapter{Handler: &Handler{Name: "out", Sink: sink, Log: quiet}, Topics: []string{"orders"}, Ordered: ordered}
		resp, err := a.InvokeLambda(context.Background(), raw)
		if err != nil {
			t.Fatal(err)
		}
		want, wantResp := "1 3", `{"batchItemFailures":[{"itemIdentifier":"m2"}]}`
		if ordered {
			want, wantResp = "1", `{"batchItemFailures":[{"itemIdentifier":"m2"},{"itemIdentifier":"m3"}]}`
		}
		if got := written(t, sink); got != want || string(resp) != wantResp {
			t.Errorf("ordered=%v: sink got %q, response %s; want %q, %s", ordered, got, resp, want, wantResp)
		}
	}
}

// A held-back record was never tried: the ledger must not count it as a
// failed attempt (else it would be dead-lettered for another's failure).
func TestHeldRecordsAreNotCountedAsFailures(t *testing.T) {
	recs := func() []Record {
		r := []Record{rec(0, `{"n":"0"}`), {ID: "m1", Topic: "in", Offset: 1, Raw: []byte("x"), DecodeErr: errors.New("bad json")}, rec(2, `{"n":"2"}`)}
		for i := range r {
			r[i].Group, r[i].Attempt = "in-0", 0
		}
		return r
	}
	sink := &countingSink{}
	h := &Handler{Name: "x", Sink: sink, Log: quiet}
	res, err := h.Handle(context.Background(), recs())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.FailedIdx) != "[1 2]" || res.Held != 1 || len(sink.got) != 1 {
		t.Fatalf("result %+v, %d written", res, len(sink.got))
	}
}

// Why a record failed is logged with its id: a record the sink refuses
// (its reason is the sink's), one dead-lettered after its last attempt, and
// — at error — records whose dead-lettering failed, with both reasons.
func TestFailedRecordsAreLoggedWithTheirReason(t *testing.T) {
	refuse := func(_ int, batch []*events.Event) error {
		return &WriteError{Failed: map[int]error{1: errors.New("value too long for column note")}}
	}
	recs := func() []Record { return []Record{rec(0, `{"n":"0"}`), rec(1, `{"n":"1"}`), rec(2, `{"n":"2"}`)} }
	cases := []struct {
		name    string
		dlq     topic.Producer
		attempt int
		want    []string
	}{
		{"failed", nil, 1, []string{`level=WARN msg="records failed or dead-lettered"`, `failed=1`, `m1: value too long for column note`}},
		{"dead-lettered", topic.NewMemory(), 3, []string{`dead_lettered=1`, `m1: dead-lettered: write: after 3 attempts: value too long for column note`}},
		{"dead-lettering failed", failingProducer{}, 3, []string{
			`level=ERROR msg="dead-lettering failed; the records are reported failed instead"`, `ids=[m1]`, `dlq broker down`, `first_reason="after 3 attempts: value too long for column note"`,
			`m1: write: after 3 attempts: value too long for column note; dead-lettering it failed: dead-letter to in.dlq: dlq broker down`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			h := &Handler{Name: "out", Sink: &countingSink{fail: refuse}, Log: slog.New(slog.NewTextHandler(&logs, nil)), MaxAttempts: 3}
			if c.dlq != nil {
				if m, ok := c.dlq.(*topic.Memory); ok {
					m.AutoCreate = true
				}
				h.DeadLetters = c.dlq
			}
			rs := recs()
			for i := range rs {
				rs[i].Attempt = c.attempt
			}
			if _, err := h.Handle(context.Background(), rs); err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(logs.String(), w) {
					t.Errorf("the log lacks %s:\n%s", w, logs.String())
				}
			}
		})
	}
}
