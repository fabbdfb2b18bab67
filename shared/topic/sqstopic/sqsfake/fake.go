// Package sqsfake is an in-process fake of the SQS JSON 1.0 protocol for
// tests, written from AWS's API reference: requests are POSTs with
// X-Amz-Target: AmazonSQS.<Operation> and Content-Type
// application/x-amz-json-1.0; errors are 400s with a __type. Times given in
// seconds (VisibilityTimeout, WaitTimeSeconds, DelaySeconds) are multiplied
// by Server.Second, so that tests can use short timeouts.
package sqsfake

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeAttr struct {
	DataType    string `json:"DataType"`
	StringValue string `json:"StringValue,omitempty"`
	BinaryValue []byte `json:"BinaryValue,omitempty"`
}

type fakeMsg struct {
	id, body, group, dedup, seq string
	attrs                       map[string]fakeAttr
	sent                        time.Time
	visibleAt                   time.Time
	receives                    int
	firstReceive                time.Time
	receipt                     string
	inFlight                    bool
}

type fakeQueue struct {
	name         string
	fifo         bool
	contentDedup bool
	visibility   int // seconds
	msgs         []*fakeMsg
	dedup        map[string]fakeDedup
	seq          int
}

type fakeDedup struct {
	at time.Time
	id string
}

// Server is the fake; its HTTP server is closed when the test ends.
type Server struct {
	t    testing.TB
	HTTP *httptest.Server
	// Second is how long one of the protocol's seconds lasts (50 ms by
	// default), so that tests can use short timeouts.
	Second time.Duration

	mu     sync.Mutex
	queues map[string]*fakeQueue
	nextID int
	// FailEntry, when set, makes SendMessageBatch fail entries it returns
	// true for (per-entry Failed, code InternalError).
	FailEntry func(body string) bool
	calls     map[string]int
}

// New starts a fake SQS endpoint (Server.HTTP.URL).
func New(t testing.TB) *Server {
	f := &Server{t: t, Second: 50 * time.Millisecond, queues: map[string]*fakeQueue{}, calls: map[string]int{}}
	f.HTTP = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.HTTP.Close)
	return f
}

// URL is the queue URL of name.
func (f *Server) URL(name string) string { return f.HTTP.URL + "/000000000000/" + name }

type apiError struct {
	code, msg string
}

func (f *Server) serve(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.")
	var resp any
	var err *apiError
	switch {
	case r.Method != http.MethodPost:
		err = &apiError{"InvalidAction", "method " + r.Method}
	case !ok:
		err = &apiError{"InvalidAction", "missing X-Amz-Target AmazonSQS.<Operation>"}
	case r.Header.Get("Content-Type") != "application/x-amz-json-1.0":
		err = &apiError{"InvalidParameterValue", "Content-Type " + r.Header.Get("Content-Type")}
	case !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 "):
		err = &apiError{"MissingAuthenticationToken", "unsigned request"}
	default:
		var body map[string]json.RawMessage
		if e := json.NewDecoder(r.Body).Decode(&body); e != nil {
			err = &apiError{"InvalidParameterValue", "body: " + e.Error()}
			break
		}
		f.mu.Lock()
		f.calls[op]++
		f.mu.Unlock()
		switch op {
		case "SendMessageBatch":
			resp, err = f.sendMessageBatch(body)
		case "SendMessage":
			resp, err = f.sendMessage(body)
		case "ReceiveMessage":
			resp, err = f.receiveMessage(r, body)
		case "DeleteMessageBatch":
			resp, err = f.deleteMessageBatch(body)
		case "GetQueueAttributes":
			resp, err = f.getQueueAttributes(body)
		case "GetQueueUrl":
			resp, err = f.getQueueURL(body)
		case "CreateQueue":
			resp, err = f.createQueue(body)
		default:
			err = &apiError{"InvalidAction", "unsupported operation " + op}
		}
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	if err != nil {
		w.Header().Set("x-amzn-query-error", err.code+";Sender")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.sqs#" + err.code, "message": err.msg})
		return
	}
	_ = json.NewEncoder(w).Encode(resp)
}

func field[T any](body map[string]json.RawMessage, name string, required bool, dst *T) *apiError {
	raw, ok := body[name]
	if !ok || string(raw) == "null" {
		if required {
			return &apiError{"MissingParameter", "The request must contain the parameter " + name + "."}
		}
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return &apiError{"InvalidParameterValue", name + ": " + err.Error()}
	}
	return nil
}

// queue finds the queue of the request's QueueUrl; the caller holds f.mu.
func (f *Server) queue(body map[string]json.RawMessage) (*fakeQueue, *apiError) {
	var u string
	if err := field(body, "QueueUrl", true, &u); err != nil {
		return nil, err
	}
	prefix := f.HTTP.URL + "/000000000000/"
	q := f.queues[strings.TrimPrefix(u, prefix)]
	if !strings.HasPrefix(u, prefix) || q == nil {
		return nil, &apiError{"QueueDoesNotExist", "The specified queue does not exist: " + u}
	}
	return q, nil
}

var (
	fakeIDRe  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)
	fakeTagRe = regexp.MustCompile(`^[!-~]{1,128}$`) // group and dedup ids: printable ASCII
)

func (f *Server) createQueue(body map[string]json.RawMessage) (any, *apiError) {
	var name string
	var attrs map[string]string
	if err := field(body, "QueueName", true, &name); err != nil {
		return nil, err
	}
	if err := field(body, "Attributes", false, &attrs); err != nil {
		return nil, err
	}
	fifo := attrs["FifoQueue"] == "true"
	if fifo != strings.HasSuffix(name, ".fifo") {
		return nil, &apiError{"InvalidParameterValue", "a FIFO queue's name ends in .fifo, and only a FIFO queue's"}
	}
	vis := 30
	if v, ok := attrs["VisibilityTimeout"]; ok {
		vis, _ = strconv.Atoi(v)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.queues[name] == nil {
		f.queues[name] = &fakeQueue{name: name, fifo: fifo, contentDedup: attrs["ContentBasedDeduplication"] == "true", visibility: vis, dedup: map[string]fakeDedup{}}
	}
	return map[string]string{"QueueUrl": f.URL(name)}, nil
}

func (f *Server) getQueueURL(body map[string]json.RawMessage) (any, *apiError) {
	var name string
	if err := field(body, "QueueName", true, &name); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.queues[name] == nil {
		return nil, &apiError{"QueueDoesNotExist", "The specified queue does not exist."}
	}
	return map[string]string{"QueueUrl": f.URL(name)}, nil
}

func (f *Server) getQueueAttributes(body map[string]json.RawMessage) (any, *apiError) {
	var names []string
	if err := field(body, "AttributeNames", false, &names); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	q, err := f.queue(body)
	if err != nil {
		return nil, err
	}
	visible := 0
	for _, m := range q.msgs {
		if !m.inFlight {
			visible++
		}
	}
	all := map[string]string{
		"QueueArn":                    "arn:aws:sqs:us-east-1:000000000000:" + q.name,
		"ApproximateNumberOfMessages": strconv.Itoa(visible),
		"VisibilityTimeout":           strconv.Itoa(q.visibility),
		"FifoQueue":                   strconv.FormatBool(q.fifo),
	}
	if q.fifo {
		all["ContentBasedDeduplication"] = strconv.FormatBool(q.contentDedup)
	}
	out := map[string]string{}
	for _, n := range names {
		if n == "All" {
			out = all
			break
		}
		if v, ok := all[n]; ok {
			out[n] = v
		}
	}
	return map[string]any{"Attributes": out}, nil
}

type fakeSendEntry struct {
	ID                     string              `json:"Id"`
	MessageBody            *string             `json:"MessageBody"`
	DelaySeconds           int                 `json:"DelaySeconds"`
	MessageAttributes      map[string]fakeAttr `json:"MessageAttributes"`
	MessageGroupID         string              `json:"MessageGroupId"`
	MessageDeduplicationID string              `json:"MessageDeduplicationId"`
}

type fakeFailed struct {
	ID          string `json:"Id"`
	Code        string `json:"Code"`
	Message     string `json:"Message"`
	SenderFault bool   `json:"SenderFault"`
}

func (f *Server) sendMessageBatch(body map[string]json.RawMessage) (any, *apiError) {
	var entries []fakeSendEntry
	if err := field(body, "Entries", true, &entries); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	q, err := f.queue(body)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, &apiError{"EmptyBatchRequest", "There should be at least one SendMessageBatchRequestEntry in the request."}
	}
	if len(entries) > 10 {
		return nil, &apiError{"TooManyEntriesInBatchRequest", fmt.Sprintf("Maximum number of entries per request are 10. You have sent %d.", len(entries))}
	}
	ids, total := map[string]bool{}, 0
	for _, e := range entries {
		if !fakeIDRe.MatchString(e.ID) {
			return nil, &apiError{"InvalidBatchEntryId", "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long."}
		}
		if ids[e.ID] {
			return nil, &apiError{"BatchEntryIdsNotDistinct", "Id " + e.ID + " repeated."}
		}
		ids[e.ID] = true
		if e.MessageBody == nil {
			return nil, &apiError{"MissingParameter", "The request must contain the parameter Entries.N.MessageBody."}
		}
		total += len(*e.MessageBody) + attrsSize(e.MessageAttributes)
		if len(e.MessageAttributes) > 10 {
			return nil, &apiError{"InvalidParameterValue", "Number of message attributes exceeds the allowed maximum 10."}
		}
		for k, a := range e.MessageAttributes {
			if a.DataType == "" || (a.StringValue == "" && a.BinaryValue == nil) {
				return nil, &apiError{"InvalidParameterValue", "Message attribute " + k + " must have a DataType and a value."}
			}
		}
		if q.fifo {
			if e.MessageGroupID == "" {
				return nil, &apiError{"MissingParameter", "The request must contain the parameter MessageGroupId."}
			}
			if e.DelaySeconds != 0 {
				return nil, &apiError{"InvalidParameterValue", "Value " + strconv.Itoa(e.DelaySeconds) + " for parameter DelaySeconds is invalid. Reason: The request include parameter that is not valid for this queue type."}
			}
		}
		if e.MessageGroupID != "" && !fakeTagRe.MatchString(e.MessageGroupID) || e.MessageDeduplicationID != "" && !fakeTagRe.MatchString(e.MessageDeduplicationID) {
			return nil, &apiError{"InvalidParameterValue", "MessageGroupId and MessageDeduplicationId are 1 to 128 printable ASCII characters."}
		}
		if e.DelaySeconds < 0 || e.DelaySeconds > 900 {
			return nil, &apiError{"InvalidParameterValue", "DelaySeconds must be between 0 and 900."}
		}
	}
	if total > 256*1024 {
		return nil, &apiError{"BatchRequestTooLong", fmt.Sprintf("Batch requests cannot be longer than 262144 bytes. You have sent %d bytes.", total)}
	}
	var ok []map[string]string
	failed := []fakeFailed{}
	now := time.Now()
	for _, e := range entries {
		body := *e.MessageBody
		if len(body)+attrsSize(e.MessageAttributes) > 256*1024 {
			failed = append(failed, fakeFailed{ID: e.ID, Code: "InvalidParameterValue", Message: "One or more parameters are invalid. Reason: Message must be shorter than 262144 bytes.", SenderFault: true})
			continue
		}
		if f.FailEntry != nil && f.FailEntry(body) {
			failed = append(failed, fakeFailed{ID: e.ID, Code: "InternalError", Message: "injected failure"})
			continue
		}
		res := map[string]string{"Id": e.ID, "MD5OfMessageBody": md5Hex(body)}
		if len(e.MessageAttributes) > 0 {
			res["MD5OfMessageAttributes"] = attrsMD5(e.MessageAttributes)
		}
		if q.fifo {
			dedup := e.MessageDeduplicationID
			if dedup == "" {
				if !q.contentDedup {
					failed = append(failed, fakeFailed{ID: e.ID, Code: "InvalidParameterValue", Message: "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly", SenderFault: true})
					continue
				}
				sum := sha256.Sum256([]byte(body))
				dedup = hex.EncodeToString(sum[:])
			}
			if d, seen := q.dedup[dedup]; seen && now.Sub(d.at) < 5*time.Minute {
				res["MessageId"] = d.id // accepted, not enqueued again
				res["SequenceNumber"] = strconv.Itoa(q.seq)
				ok = append(ok, res)
				continue
			}
			q.seq++
			f.nextID++
			m := &fakeMsg{id: fmt.Sprintf("msg-%d", f.nextID), body: body, attrs: e.MessageAttributes, group: e.MessageGroupID, dedup: dedup, seq: fmt.Sprintf("%020d", q.seq), sent: now, visibleAt: now}
			q.dedup[dedup] = fakeDedup{at: now, id: m.id}
			q.msgs = append(q.msgs, m)
			res["MessageId"], res["SequenceNumber"] = m.id, m.seq
			ok = append(ok, res)
			continue
		}
		f.nextID++
		m := &fakeMsg{id: fmt.Sprintf("msg-%d", f.nextID), body: body, attrs: e.MessageAttributes, group: e.MessageGroupID, sent: now,
			visibleAt: now.Add(time.Duration(e.DelaySeconds) * f.Second)}
		q.msgs = append(q.msgs, m)
		res["MessageId"] = m.id
		ok = append(ok, res)
	}
	return map[string]any{"Successful": ok, "Failed": failed}, nil
}

// sendMessage is SendMessageBatch of one entry.
func (f *Server) sendMessage(body map[string]json.RawMessage) (any, *apiError) {
	var e fakeSendEntry
	if err := field(body, "MessageBody", true, &e.MessageBody); err != nil {
		return nil, err
	}
	for _, p := range []*apiError{
		field(body, "DelaySeconds", false, &e.DelaySeconds),
		field(body, "MessageAttributes", false, &e.MessageAttributes),
		field(body, "MessageGroupId", false, &e.MessageGroupID),
		field(body, "MessageDeduplicationId", false, &e.MessageDeduplicationID),
	} {
		if p != nil {
			return nil, p
		}
	}
	e.ID = "single"
	entries, _ := json.Marshal([]fakeSendEntry{e})
	res, err := f.sendMessageBatch(map[string]json.RawMessage{"QueueUrl": body["QueueUrl"], "Entries": entries})
	if err != nil {
		return nil, err
	}
	r := res.(map[string]any)
	if failed := r["Failed"].([]fakeFailed); len(failed) > 0 {
		return nil, &apiError{failed[0].Code, failed[0].Message}
	}
	out := r["Successful"].([]map[string]string)[0]
	delete(out, "Id")
	return out, nil
}

func (f *Server) receiveMessage(r *http.Request, body map[string]json.RawMessage) (any, *apiError) {
	var maxN, wait int
	vis := -1
	var sysNames, oldNames, attrNames []string
	for _, p := range []*apiError{
		field(body, "MaxNumberOfMessages", false, &maxN),
		field(body, "WaitTimeSeconds", false, &wait),
		field(body, "VisibilityTimeout", false, &vis),
		field(body, "MessageSystemAttributeNames", false, &sysNames),
		field(body, "AttributeNames", false, &oldNames),
		field(body, "MessageAttributeNames", false, &attrNames),
	} {
		if p != nil {
			return nil, p
		}
	}
	if maxN == 0 {
		maxN = 1
	}
	if maxN < 1 || maxN > 10 {
		return nil, &apiError{"InvalidParameterValue", "Value for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10."}
	}
	if wait < 0 || wait > 20 {
		return nil, &apiError{"InvalidParameterValue", "Value for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20."}
	}
	if _, hasVis := body["VisibilityTimeout"]; hasVis && (vis < 0 || vis > 43200) {
		return nil, &apiError{"InvalidParameterValue", "VisibilityTimeout must be between 0 and 43200."}
	}
	deadline := time.Now().Add(time.Duration(wait) * f.Second)
	for {
		f.mu.Lock()
		q, err := f.queue(body)
		if err != nil {
			f.mu.Unlock()
			return nil, err
		}
		v := vis
		if _, hasVis := body["VisibilityTimeout"]; !hasVis {
			v = q.visibility
		}
		got := f.take(q, maxN, v)
		out := make([]map[string]any, 0, len(got))
		for _, m := range got {
			out = append(out, f.render(q, m, append(sysNames, oldNames...), attrNames))
		}
		f.mu.Unlock()
		if len(out) > 0 || !time.Now().Before(deadline) {
			return map[string]any{"Messages": out}, nil
		}
		select {
		case <-r.Context().Done():
			return map[string]any{"Messages": out}, nil
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// take picks up to n visible messages, hides them for vis seconds; the
// caller holds f.mu. On a FIFO queue a group with a message in flight
// gives nothing, and a group's messages come in order.
func (f *Server) take(q *fakeQueue, n, vis int) []*fakeMsg {
	now := time.Now()
	for _, m := range q.msgs {
		if m.inFlight && !now.Before(m.visibleAt) {
			m.inFlight = false
		}
	}
	blocked := map[string]bool{}
	if q.fifo {
		for _, m := range q.msgs {
			if m.inFlight {
				blocked[m.group] = true
			}
		}
	}
	var got []*fakeMsg
	for _, m := range q.msgs {
		if len(got) == n {
			break
		}
		if m.inFlight || now.Before(m.visibleAt) {
			if q.fifo {
				blocked[m.group] = true
			}
			continue
		}
		if q.fifo && blocked[m.group] {
			continue
		}
		got = append(got, m)
	}
	for _, m := range got {
		m.receives++
		if m.firstReceive.IsZero() {
			m.firstReceive = now
		}
		m.inFlight = true
		m.visibleAt = now.Add(time.Duration(vis) * f.Second)
		f.nextID++
		m.receipt = fmt.Sprintf("rh-%s-%d", m.id, f.nextID)
	}
	return got
}

func (f *Server) render(q *fakeQueue, m *fakeMsg, sysNames, attrNames []string) map[string]any {
	out := map[string]any{"MessageId": m.id, "ReceiptHandle": m.receipt, "Body": m.body, "MD5OfBody": md5Hex(m.body)}
	sys := map[string]string{
		"ApproximateReceiveCount":          strconv.Itoa(m.receives),
		"SentTimestamp":                    strconv.FormatInt(m.sent.UnixMilli(), 10),
		"ApproximateFirstReceiveTimestamp": strconv.FormatInt(m.firstReceive.UnixMilli(), 10),
		"SenderId":                         "AIDAFAKE",
	}
	if q.fifo {
		sys["MessageGroupId"], sys["MessageDeduplicationId"], sys["SequenceNumber"] = m.group, m.dedup, m.seq
	}
	attrs := map[string]string{}
	for _, n := range sysNames {
		if n == "All" {
			attrs = sys
			break
		}
		if v, ok := sys[n]; ok {
			attrs[n] = v
		}
	}
	if len(attrs) > 0 {
		out["Attributes"] = attrs
	}
	mattrs := map[string]fakeAttr{}
	for _, n := range attrNames {
		for k, v := range m.attrs {
			if n == "All" || n == ".*" || n == k || strings.HasSuffix(n, ".*") && strings.HasPrefix(k, strings.TrimSuffix(n, "*")) {
				mattrs[k] = v
			}
		}
	}
	if len(mattrs) > 0 {
		out["MessageAttributes"] = mattrs
		out["MD5OfMessageAttributes"] = attrsMD5(mattrs)
	}
	return out
}

func (f *Server) deleteMessageBatch(body map[string]json.RawMessage) (any, *apiError) {
	var entries []struct {
		ID            string `json:"Id"`
		ReceiptHandle string `json:"ReceiptHandle"`
	}
	if err := field(body, "Entries", true, &entries); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	q, err := f.queue(body)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 || len(entries) > 10 {
		return nil, &apiError{"TooManyEntriesInBatchRequest", "1 to 10 entries"}
	}
	ok := []map[string]string{}
	failed := []fakeFailed{}
	for _, e := range entries {
		if !fakeIDRe.MatchString(e.ID) || e.ReceiptHandle == "" {
			return nil, &apiError{"MissingParameter", "Entries need an Id and a ReceiptHandle."}
		}
		i := -1
		for j, m := range q.msgs {
			if m.receipt == e.ReceiptHandle {
				i = j
			}
		}
		if i < 0 {
			failed = append(failed, fakeFailed{ID: e.ID, Code: "ReceiptHandleIsInvalid", Message: "The receipt handle is not valid (or is stale).", SenderFault: true})
			continue
		}
		q.msgs = append(q.msgs[:i], q.msgs[i+1:]...)
		ok = append(ok, map[string]string{"Id": e.ID})
	}
	return map[string]any{"Successful": ok, "Failed": failed}, nil
}

// Depth is the number of messages in a queue, in flight or not.
func (f *Server) Depth(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.queues[name].msgs)
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func attrsSize(a map[string]fakeAttr) int {
	n := 0
	for k, v := range a {
		n += len(k) + len(v.DataType) + len(v.StringValue) + len(v.BinaryValue)
	}
	return n
}

// attrsMD5 is the documented MD5 of message attributes: for each name in
// order, length-prefixed (4 bytes, big endian) name and data type, a
// transport byte (1 string, 2 binary) and the length-prefixed value.
func attrsMD5(a map[string]fakeAttr) string {
	names := make([]string, 0, len(a))
	for k := range a {
		names = append(names, k)
	}
	sort.Strings(names)
	h := md5.New()
	put := func(b []byte) {
		var l [4]byte
		binary.BigEndian.PutUint32(l[:], uint32(len(b)))
		h.Write(l[:])
		h.Write(b)
	}
	for _, k := range names {
		v := a[k]
		put([]byte(k))
		put([]byte(v.DataType))
		if strings.HasPrefix(v.DataType, "Binary") {
			h.Write([]byte{2})
			put(v.BinaryValue)
		} else {
			h.Write([]byte{1})
			put([]byte(v.StringValue))
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Calls is how many times operation op (e.g. "SendMessageBatch") was called.
func (f *Server) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}
