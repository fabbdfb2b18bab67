package events

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	lambdaevents "github.com/aws/aws-lambda-go/events"
)

// SQS message attributes rivven-connect reads and writes. An SQS body is
// text, so a payload that is not valid UTF-8 travels base64-encoded with
// SQSAttrEncoding set to "base64"; SQSAttrKey carries the event key.
const (
	SQSAttrKey      = "rivven-key"
	SQSAttrEncoding = "rivven-encoding"
)

// ParseSQSEvent parses an SQS trigger event (the shape of aws-lambda-go's
// SQSEvent). A FIFO queue (its ARN ends in .fifo) marks the batch FIFO,
// which changes how failures are answered. It reads the envelope with the
// codecs' scanner rather than encoding/json, which spent three quarters of
// the adapter's time unquoting bodies into maps nobody reads.
func ParseSQSEvent(raw []byte) (*Batch, error) {
	var recs []byte
	if err := objectFields(raw, func(k, v []byte) error {
		if keyIs(k, "Records") {
			recs = v
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("sqs event: %w", err)
	}
	return parseSQSRecords(recs)
}

// parseSQSRecords parses the Records array of an SQS event.
func parseSQSRecords(recs []byte) (*Batch, error) {
	b := &Batch{Kind: TriggerSQS}
	err := arrayObjects(recs, func(i int, rest []byte) (int, error) {
		d, arn, end, err := parseSQSMessage(rest)
		if err != nil {
			return end, fmt.Errorf("record %d: %w", i, err)
		}
		if strings.HasSuffix(arn, ".fifo") {
			b.FIFO = true
		}
		b.Deliveries = append(b.Deliveries, d)
		return end, nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqs event: %w", err)
	}
	return b, nil
}

// parseSQSMessage parses the message object at the start of rec and
// returns where it ends.
func parseSQSMessage(rec []byte) (d Delivery, arn string, end int, err error) {
	var body string
	end, err = objectFieldsEnd(rec, func(k, v []byte) error {
		var err error
		switch {
		case keyIs(k, "messageId"):
			d.ID, err = stringOrNull(v)
		case keyIs(k, "body"):
			body, err = stringOrNull(v)
		case keyIs(k, "eventSourceARN"):
			arn, err = stringOrNull(v)
		case keyIs(k, "attributes"):
			err = objectFields(v, func(ak, av []byte) error {
				var s string
				var err error
				switch {
				case keyIs(ak, "ApproximateReceiveCount"):
					if s, err = stringOrNull(av); err == nil {
						d.Attempt = atoiOr0(s)
					}
				case keyIs(ak, "MessageGroupId"):
					d.Group, err = stringOrNull(av)
				case keyIs(ak, "AWSTraceHeader"):
					d.AWSTraceHeader, err = stringOrNull(av)
				case keyIs(ak, "SentTimestamp"):
					if s, err = stringOrNull(av); err == nil {
						if ms, perr := strconv.ParseInt(s, 10, 64); perr == nil {
							d.Time = time.UnixMilli(ms).UTC()
						}
					}
				}
				return err
			})
		case keyIs(k, "messageAttributes"):
			if isNull(v) {
				return nil
			}
			err = objectFields(v, func(ak, av []byte) error {
				name, err := unquote(ak)
				if err != nil {
					return err
				}
				var sv *string
				if err := objectFields(av, func(fk, fv []byte) error {
					if keyIs(fk, "stringValue") && !isNull(fv) {
						s, err := stringOrNull(fv)
						sv = &s
						return err
					}
					return nil
				}); err != nil {
					return fmt.Errorf("messageAttributes.%s: %w", name, err)
				}
				if sv != nil {
					if d.Attributes == nil {
						d.Attributes = map[string]string{}
					}
					d.Attributes[name] = *sv
				}
				return nil
			})
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		return nil
	})
	if err != nil {
		return d, arn, end, err
	}
	if d.ID == "" {
		return d, arn, end, errors.New("no messageId")
	}
	d.Topic = strings.TrimSuffix(arnName(arn), ".fifo")
	d.Value = []byte(body)
	if k, ok := d.Attributes[SQSAttrKey]; ok {
		d.Key = []byte(k)
	}
	if d.Attributes[SQSAttrEncoding] == "base64" {
		if d.Value, d.Err = base64.StdEncoding.DecodeString(body); d.Err != nil {
			d.Err = fmt.Errorf("sqs message %s: body is not base64 although %s says so: %w", d.ID, SQSAttrEncoding, d.Err)
		}
	}
	return d, arn, end, nil
}

// arrayObjects walks the JSON array b; fn parses the element at the start
// of the slice it gets and returns where it ends, so that each element is
// scanned once.
func arrayObjects(b []byte, fn func(n int, rest []byte) (int, error)) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return &syntaxError{i, "expected array"}
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return nil
	}
	for n := 0; ; n++ {
		end, err := fn(n, b[i:])
		if err != nil {
			return err
		}
		i = skipSpace(b, i+end)
		if i >= len(b) {
			return errEOF
		}
		if b[i] == ']' {
			return nil
		}
		if b[i] != ',' {
			return &syntaxError{i, "expected ',' or ']'"}
		}
		i = skipSpace(b, i+1)
	}
}

// objectFieldsEnd is objectFields for an object at the start of b that
// may be followed by more input: it returns the offset just past it.
func objectFieldsEnd(b []byte, fn func(key, val []byte) error) (int, error) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return i, &syntaxError{i, "expected object"}
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != '"' {
			return i, &syntaxError{i, "expected object key"}
		}
		ks := i
		ke, err := skipString(b, i)
		if err != nil {
			return i, err
		}
		i = skipSpace(b, ke)
		if i >= len(b) || b[i] != ':' {
			return i, &syntaxError{i, "expected ':'"}
		}
		vs := skipSpace(b, i+1)
		ve, err := skipValue(b, vs)
		if err != nil {
			return i, err
		}
		key := b[ks:ke]
		if bytes.IndexByte(key, '\\') >= 0 {
			k, err := unquote(key)
			if err != nil {
				return i, err
			}
			key = appendString(nil, k)
		}
		if err := fn(key, b[vs:ve]); err != nil {
			return i, err
		}
		i = skipSpace(b, ve)
		if i >= len(b) {
			return i, errEOF
		}
		if b[i] == '}' {
			return i + 1, nil
		}
		if b[i] != ',' {
			return i, &syntaxError{i, "expected ',' or '}'"}
		}
		i++
	}
}

// sqsResponse lists the failed messages. On a FIFO queue a message group
// must not see a later message before the failed one comes again, so
// from a group's first failure on every message of that group is
// reported; other groups are acknowledged as they went (what Powertools'
// FIFO processor does with skip_group_on_error). A later message of the
// group that was written anyway is deduplicated by id when it comes back.
func (b *Batch) sqsResponse(failed []int) lambdaevents.SQSEventResponse {
	r := lambdaevents.SQSEventResponse{BatchItemFailures: []lambdaevents.SQSBatchItemFailure{}}
	if b.FIFO && len(failed) > 0 {
		stopped := map[string]bool{}
		next := 0
		for i, d := range b.Deliveries {
			isFailed := next < len(failed) && failed[next] == i
			if isFailed {
				next++
				stopped[d.Group] = true
			}
			if isFailed || stopped[d.Group] {
				r.BatchItemFailures = append(r.BatchItemFailures, lambdaevents.SQSBatchItemFailure{ItemIdentifier: d.ID})
			}
		}
		return r
	}
	for _, i := range failed {
		r.BatchItemFailures = append(r.BatchItemFailures, lambdaevents.SQSBatchItemFailure{ItemIdentifier: b.Deliveries[i].ID})
	}
	return r
}

// SQSSource says which queue an emulated SQS event comes from.
type SQSSource struct {
	QueueARN string // arn:aws:sqs:<region>:<account>:<queue>[.fifo]
	Region   string
}

// NewSQSEvent builds the event Lambda would send for these deliveries from
// the queue: receive count, sent timestamp, group id for FIFO queues, the
// key as a message attribute, and a base64 body for payloads that are not
// UTF-8 text. The local emulator and the samples use it.
func NewSQSEvent(src SQSSource, ds []Delivery) lambdaevents.SQSEvent {
	ev := lambdaevents.SQSEvent{Records: make([]lambdaevents.SQSMessage, len(ds))}
	fifo := strings.HasSuffix(src.QueueARN, ".fifo")
	for i := range ds {
		d := &ds[i]
		attempt := max(d.Attempt, 1)
		m := lambdaevents.SQSMessage{
			MessageId:     d.ID,
			ReceiptHandle: base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%s#%d", d.ID, attempt)),
			Body:          string(d.Value),
			Attributes: map[string]string{
				"ApproximateReceiveCount":          strconv.Itoa(attempt),
				"SentTimestamp":                    strconv.FormatInt(d.Time.UnixMilli(), 10),
				"SenderId":                         "AIDAIENQZJOLO23YVJ4VO",
				"ApproximateFirstReceiveTimestamp": strconv.FormatInt(d.Time.UnixMilli(), 10),
			},
			MessageAttributes: map[string]lambdaevents.SQSMessageAttribute{},
			EventSourceARN:    src.QueueARN,
			EventSource:       sourceSQS,
			AWSRegion:         src.Region,
		}
		if !utf8.Valid(d.Value) {
			m.Body = base64.StdEncoding.EncodeToString(d.Value)
			enc := "base64"
			m.MessageAttributes[SQSAttrEncoding] = lambdaevents.SQSMessageAttribute{StringValue: &enc, DataType: "String"}
		}
		if len(d.Key) > 0 && utf8.Valid(d.Key) {
			k := string(d.Key)
			m.MessageAttributes[SQSAttrKey] = lambdaevents.SQSMessageAttribute{StringValue: &k, DataType: "String"}
		}
		if fifo {
			m.Attributes["MessageGroupId"] = d.Group
			m.Attributes["MessageDeduplicationId"] = d.ID
			m.Attributes["SequenceNumber"] = strconv.FormatInt(18_000_000_000_000_000+d.Offset, 10)
		}
		m.Md5OfBody = md5Hex(m.Body)
		ev.Records[i] = m
	}
	return ev
}
