package topic

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rivven/rivven-connect/shared/state"
)

// Redis is a durable, partitioned topic transport on Redis Streams: what
// `rivven-connect run` publishes to and consumes from until a Kafka
// transport exists, and a fine one for small deployments.
//
// Keys of topic T (all share the hash tag {T}, so one Lua script may touch
// every partition of a topic, also on a Redis Cluster; a topic is one slot):
//
//	rivven:topic:{T}:meta    HASH  partitions, replication_factor, id (this life of the topic), hw:<p> (next offset of partition p)
//	rivven:topic:{T}:p<N>    STREAM partition N; entry ID "0-<offset+1>", fields k (key), v (value), h (headers), t (ms), e (producer epoch)
//	rivven:topic:{T}:fence   HASH  epoch:<producer>, pos:<producer> (last published source position), batch:<producer>
//	rivven:topic:{T}:groups  HASH  <group>:<p> → committed next offset, <group>:<p>:id → the topic id it was committed on
//
// Offsets are dense per partition and start at 0, like Kafka's, because the
// publishing script numbers entries itself. Topic names must not contain
// braces (they would break the hash tag). Streams are not trimmed: use
// XTRIM MINID by the lowest committed offset, or a retention job.
//
// A topic gets a random id when it is created. A topic that is deleted and
// created again — or lost with a Redis restarted empty and created again by
// the next publish — starts over at offset 0 under a new id, so offsets
// committed on the old one mean nothing on it: Committed does not return
// them, CommitOn refuses to store them (ErrTopicRecreated), and a consumer
// that compares ids (HighWatermarkID) notices. Topics created before ids
// existed have the id "" until they are created again.
type Redis struct {
	c redis.UniversalClient
	// AutoCreate creates unknown topics on first produce with Default.
	AutoCreate bool
	Default    Spec

	mu    sync.Mutex
	parts map[string]int // partition counts; topics never shrink
	rr    atomic.Uint32
	// replies sizes each partition's next fetch buffer (replySize).
	repliesMu sync.Mutex
	replies   map[string]replyHint
}

// replyHint is what a partition's last fetch read: its reply's length
// and the bytes per message.
type replyHint struct{ last, perMsg int }

// replySize is the buffer a fetch of up to limit messages of the
// partition key starts with: the last reply's size, or less for a smaller
// limit. A partition that last returned nothing (idle, waiting) gets a
// small buffer, so polling idle partitions costs no large allocations;
// the first batch after the pause grows its buffer as it goes.
func (r *Redis) replySize(key string, limit int) int {
	r.repliesMu.Lock()
	h := r.replies[key]
	r.repliesMu.Unlock()
	return min(h.last, h.perMsg*limit)*9/8 + 512
}

func (r *Redis) noteReply(key string, size, msgs int) {
	r.repliesMu.Lock()
	defer r.repliesMu.Unlock()
	if r.replies == nil {
		r.replies = map[string]replyHint{}
	}
	h := replyHint{last: size, perMsg: r.replies[key].perMsg}
	if msgs > 0 {
		h.perMsg = size / msgs
	}
	r.replies[key] = h
}

// NewRedis returns a transport over c.
func NewRedis(c redis.UniversalClient) *Redis {
	return &Redis{c: c, parts: map[string]int{}, Default: Spec{Partitions: 1, ReplicationFactor: 1}}
}

var (
	_ Producer = (*Redis)(nil)
	_ Admin    = (*Redis)(nil)
)

func topicKey(topic, suffix string) string { return "rivven:topic:{" + topic + "}:" + suffix }

func partKey(topic string, p int) string { return topicKey(topic, "p"+strconv.Itoa(p)) }

// ValidateTopic rejects names the transport cannot key.
func ValidateTopic(topic string) error {
	if topic == "" || strings.ContainsAny(topic, "{}") {
		return fmt.Errorf("invalid topic name %q: must be non-empty and contain no '{' or '}'", topic)
	}
	return nil
}

// Describe implements Admin.
func (r *Redis) Describe(ctx context.Context, topic string) (Spec, error) {
	if err := ValidateTopic(topic); err != nil {
		return Spec{}, err
	}
	v, err := r.c.HMGet(ctx, topicKey(topic, "meta"), "partitions", "replication_factor").Result()
	if err != nil {
		return Spec{}, fmt.Errorf("describe topic %q: %w", topic, err)
	}
	if v[0] == nil {
		return Spec{}, fmt.Errorf("%w %q", ErrUnknownTopic, topic)
	}
	var s Spec
	s.Partitions, _ = strconv.Atoi(v[0].(string))
	if v[1] != nil {
		s.ReplicationFactor, _ = strconv.Atoi(v[1].(string))
	}
	return s, nil
}

var createTopic = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'partitions', ARGV[1], 'replication_factor', ARGV[2], 'id', ARGV[3])
return 1
`)

// Create implements Admin.
func (r *Redis) Create(ctx context.Context, topic string, s Spec) error {
	if err := ValidateTopic(topic); err != nil {
		return err
	}
	if err := createTopic.Run(ctx, r.c, []string{topicKey(topic, "meta")}, max(s.Partitions, 1), max(s.ReplicationFactor, 1), newTopicID()).Err(); err != nil {
		return fmt.Errorf("create topic %q: %w", topic, err)
	}
	return nil
}

// Partitions returns a topic's partition count (cached after the first
// look-up), creating the topic when AutoCreate is set.
func (r *Redis) Partitions(ctx context.Context, topic string) (int, error) {
	r.mu.Lock()
	n, ok := r.parts[topic]
	r.mu.Unlock()
	if ok {
		return n, nil
	}
	s, err := r.Describe(ctx, topic)
	if errors.Is(err, ErrUnknownTopic) && r.AutoCreate {
		if err := r.Create(ctx, topic, r.Default); err != nil {
			return 0, err
		}
		s, err = r.Describe(ctx, topic)
	}
	if err != nil {
		return 0, err
	}
	r.mu.Lock()
	r.parts[topic] = s.Partitions
	r.mu.Unlock()
	return s.Partitions, nil
}

// Fence is the identity a fenced publish carries: the producing connector,
// its epoch, and optionally the source position the batch ends at (stored
// in the same atomic step, so publish and commit cannot come apart).
type Fence struct {
	Producer string
	Epoch    int64
	Position []byte // nil = do not record
}

// publish checks the producer's fence, drops a retried batch it already
// stored (the token), appends every message to its partition with the
// next dense offset, and records the position: one atomic script, one
// round trip per batch. Inside it, each message costs one XADD; the
// partitions' high watermarks are read once and written once per batch.
// Partitions are checked before anything is written, so a bad batch
// stores nothing (a script is not rolled back when it fails midway); the
// loop that appends reuses what the check parsed, and gives XADD the
// epoch as the string it came as rather than a number Redis would format
// again for every message.
// KEYS: meta, fence, p0..pN-1. ARGV: producer, epoch, has position,
// position, token, now, n, then n × (partition, key, value, headers).
var publish = redis.NewScript(`
local prod, epoch, haspos, pos, token, now, n = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOTOPIC'} end
local nparts = #KEYS - 2
local parts = {}
for i = 0, n - 1 do
  local p = tonumber(ARGV[8 + i * 4])
  if p == nil or p < 0 or p >= nparts then return redis.error_reply('partition ' .. tostring(ARGV[8 + i * 4]) .. ' out of range') end
  parts[i] = p
end
if prod ~= '' then
  if epoch > 0 then
    local cur = tonumber(redis.call('HGET', KEYS[2], 'epoch:' .. prod)) or 0
    if cur > epoch then return {'FENCED', cur} end
    if cur < epoch then redis.call('HSET', KEYS[2], 'epoch:' .. prod, epoch) end
  end
  if token ~= '' then
    if redis.call('HGET', KEYS[2], 'batch:' .. prod) == token then return {'DUP'} end
    redis.call('HSET', KEYS[2], 'batch:' .. prod, token)
  end
end
local hw, order, e = {}, {}, ARGV[2]
for i = 0, n - 1 do
  local p = parts[i]
  local off = hw[p]
  if off == nil then
    off = tonumber(redis.call('HGET', KEYS[1], 'hw:' .. p)) or 0
    order[#order + 1] = p
  end
  off = off + 1
  hw[p] = off
  redis.call('XADD', KEYS[3 + p], string.format('0-%d', off), 'k', ARGV[9 + i * 4], 'v', ARGV[10 + i * 4], 'h', ARGV[11 + i * 4], 't', now, 'e', e)
end
if #order > 0 then
  local set = {}
  for _, p in ipairs(order) do
    set[#set + 1] = 'hw:' .. p
    set[#set + 1] = string.format('%d', hw[p])
  end
  redis.call('HSET', KEYS[1], unpack(set))
end
if haspos == '1' then redis.call('HSET', KEYS[2], 'pos:' .. prod, pos) end
return {'OK'}
`)

// Produce implements Producer (unfenced).
func (r *Redis) Produce(ctx context.Context, topic string, msgs []Message) error {
	return r.ProduceFenced(ctx, topic, msgs, Fence{})
}

// ProduceFenced publishes msgs, key-partitioned, in one atomic step that
// is refused with a *state.FencedError when a producer of the same name
// with a higher epoch has published to or claimed this topic. With
// f.Position set the position is stored in the same step (LastPosition).
func (r *Redis) ProduceFenced(ctx context.Context, topic string, msgs []Message, f Fence) error {
	n, err := r.Partitions(ctx, topic)
	if err != nil {
		return err
	}
	keys := make([]string, 0, n+2)
	keys = append(keys, topicKey(topic, "meta"), topicKey(topic, "fence"))
	for p := range n {
		keys = append(keys, partKey(topic, p))
	}
	token := ""
	if f.Producer != "" {
		token = newToken() // makes a client-side retry of this call a no-op
	}
	hasPos := "0"
	if f.Position != nil {
		hasPos = "1"
	}
	args := make([]any, 0, 7+4*len(msgs))
	args = append(args, f.Producer, f.Epoch, hasPos, f.Position, token, time.Now().UnixMilli(), len(msgs))
	for _, m := range msgs {
		p := Partition(m.Key, n, r.rr.Add(1))
		args = append(args, p, m.Key, m.Value, encodeHeaders(m.Headers))
	}
	v, err := publish.Run(ctx, r.c, keys, args...).Slice()
	if err != nil {
		return fmt.Errorf("publish to %q: %w", topic, err)
	}
	switch v[0] {
	case "OK", "DUP":
		return nil
	case "FENCED":
		cur, _ := v[1].(int64)
		return &state.FencedError{Connector: f.Producer, Epoch: f.Epoch, Current: cur}
	case "NOTOPIC":
		r.mu.Lock()
		delete(r.parts, topic)
		r.mu.Unlock()
		return fmt.Errorf("publish: %w %q", ErrUnknownTopic, topic)
	}
	return fmt.Errorf("publish to %q: unexpected reply %v", topic, v)
}

var claim = redis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], 'epoch:' .. ARGV[1])) or 0
local e = tonumber(ARGV[2])
if cur > e then return cur end
if cur < e then redis.call('HSET', KEYS[1], 'epoch:' .. ARGV[1], e) end
return 0
`)

// Claim raises the producer's epoch on topic to epoch, which fences every
// older instance's publishes to it from now on; it fails with a
// *state.FencedError when a newer one already claimed it. A new instance
// claims its topics before it reads anything.
func (r *Redis) Claim(ctx context.Context, topic, producer string, epoch int64) error {
	if err := ValidateTopic(topic); err != nil {
		return err
	}
	cur, err := claim.Run(ctx, r.c, []string{topicKey(topic, "fence")}, producer, epoch).Int64()
	if err != nil {
		return fmt.Errorf("claim topic %q: %w", topic, err)
	}
	if cur != 0 {
		return &state.FencedError{Connector: producer, Epoch: epoch, Current: cur}
	}
	return nil
}

// LastPosition returns the position producer last published to topic
// with (nil if none).
func (r *Redis) LastPosition(ctx context.Context, topic, producer string) ([]byte, error) {
	if err := ValidateTopic(topic); err != nil {
		return nil, err
	}
	b, err := r.c.HGet(ctx, topicKey(topic, "fence"), "pos:"+producer).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read position on %q: %w", topic, err)
	}
	return b, nil
}

// Fetch returns up to limit messages of a partition from offset from on.
// With wait > 0 it blocks up to wait for the first one; it returns no
// messages and no error when none came.
//
// The reply is read as raw RESP (see resp.go) and the messages' keys,
// values and header values are slices of it: a batch costs a few
// allocations, not a dozen per message as go-redis's XMessage maps do.
func (r *Redis) Fetch(ctx context.Context, topic string, partition int32, from int64, limit int, wait time.Duration) ([]Message, error) {
	args := make([]any, 0, 8)
	args = append(args, "XREAD", "COUNT", limit)
	if wait > 0 {
		args = append(args, "BLOCK", max(wait, time.Millisecond).Milliseconds())
	}
	args = append(args, "STREAMS", partKey(topic, int(partition)), "0-"+strconv.FormatInt(from, 10))
	// The reply goes into one buffer sized from the partition's last
	// one, so a large batch is neither regrown nor copied on its way in.
	key := partKey(topic, int(partition))
	buf := &rawReply{b: make([]byte, 0, r.replySize(key, limit))}
	cmd := redis.NewRawWriteToCmd(ctx, buf, args...)
	err := r.c.Process(ctx, cmd)
	if err == nil {
		var out []Message
		if out, err = decodeXRead(buf.b, topic, partition); err == nil {
			r.noteReply(key, len(buf.b), len(out))
			return out, nil
		}
	}
	if redirected(err) {
		// A cluster client follows MOVED and ASK only in replies it
		// parses: this fetch goes the parsed way, which also teaches the
		// client where the slot lives now.
		return r.fetchParsed(ctx, topic, partition, from, limit, wait)
	}
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return nil, fmt.Errorf("fetch %s[%d]: %w", topic, partition, err)
}

// redirected reports a Redis Cluster redirection (MOVED, ASK) found in a
// raw reply.
func redirected(err error) bool {
	var re replyError
	return errors.As(err, &re) && (strings.HasPrefix(string(re), "MOVED ") || strings.HasPrefix(string(re), "ASK "))
}

// fetchParsed is Fetch through go-redis's XREAD, whose replies the client
// parses (and so follows cluster redirections in).
func (r *Redis) fetchParsed(ctx context.Context, topic string, partition int32, from int64, limit int, wait time.Duration) ([]Message, error) {
	block := time.Duration(-1)
	if wait > 0 {
		block = max(wait, time.Millisecond)
	}
	res, err := r.c.XRead(ctx, &redis.XReadArgs{Streams: []string{partKey(topic, int(partition))}, ID: "0-" + strconv.FormatInt(from, 10), Count: int64(limit), Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fetch %s[%d]: %w", topic, partition, err)
	}
	var out []Message
	for _, st := range res {
		for _, xm := range st.Messages {
			seq, ok := entrySeq([]byte(xm.ID))
			if !ok {
				return nil, fmt.Errorf("fetch %s[%d]: entry %s was not written by this transport", topic, partition, xm.ID)
			}
			m := Message{Topic: topic, Partition: partition, Offset: seq - 1}
			field := func(f string) []byte {
				v, _ := xm.Values[f].(string)
				return []byte(v)
			}
			if k := field("k"); len(k) > 0 {
				m.Key = k
			}
			m.Value = field("v")
			if h := field("h"); len(h) > 0 {
				m.Headers = decodeHeaders(h)
			}
			if ms, ok := parseDigits(field("t")); ok {
				m.Time = time.UnixMilli(ms)
			}
			if e := field("e"); len(e) > 0 && string(e) != "0" {
				m.Headers = append(m.Headers, Header{Key: EpochHeader, Value: e})
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// EpochHeader is the header Fetch adds to a message that was published
// fenced: the producer's epoch, so consumers and audits can tell which
// instance wrote it.
const EpochHeader = "rivven-epoch"

// ErrTopicRecreated is returned by CommitOn when the topic is no longer
// the one the offset was read from: it was deleted (or lost with Redis)
// and created again, and its offsets start over.
var ErrTopicRecreated = errors.New("topic was recreated: its offsets started over")

// commitGroup stores a group's next offset with the id of the topic it
// belongs to. KEYS: groups, meta. ARGV: field, next, expected topic id,
// whether to check it. An offset stored on an earlier topic of the same
// name is replaced, else the offset never moves backwards.
var commitGroup = redis.NewScript(`
local cur = redis.call('HGET', KEYS[2], 'id') or ''
if ARGV[4] == '1' and ARGV[3] ~= cur then return {'RECREATED', cur} end
local idf = ARGV[1] .. ':id'
local was = redis.call('HGET', KEYS[1], idf) or ''
local next = tonumber(ARGV[2])
if was ~= cur then
  redis.call('HSET', KEYS[1], ARGV[1], next, idf, cur)
  return {'OK'}
end
local off = tonumber(redis.call('HGET', KEYS[1], ARGV[1])) or -1
if next > off then redis.call('HSET', KEYS[1], ARGV[1], next, idf, cur) end
return {'OK'}
`)

// Commit stores a consumer group's next offset of a partition. It never
// moves backwards, so a late commit from a slow consumer cannot rewind the
// group.
func (r *Redis) Commit(ctx context.Context, group, topic string, partition int32, next int64) error {
	return r.commit(ctx, group, topic, partition, next, "", false)
}

// CommitOn is Commit for an offset read from the topic whose id is
// topicID (see HighWatermarkID): it fails with ErrTopicRecreated, storing
// nothing, when the topic has another id now.
func (r *Redis) CommitOn(ctx context.Context, group, topic string, partition int32, next int64, topicID string) error {
	return r.commit(ctx, group, topic, partition, next, topicID, true)
}

func (r *Redis) commit(ctx context.Context, group, topic string, partition int32, next int64, topicID string, check bool) error {
	field := group + ":" + strconv.Itoa(int(partition))
	v, err := commitGroup.Run(ctx, r.c, []string{topicKey(topic, "groups"), topicKey(topic, "meta")}, field, next, topicID, b01(check)).Slice()
	if err != nil {
		return fmt.Errorf("commit %s %s[%d]: %w", group, topic, partition, err)
	}
	if len(v) > 0 && v[0] == "RECREATED" {
		return fmt.Errorf("commit %s %s[%d] at %d: %w (id %q, now %q)", group, topic, partition, next, ErrTopicRecreated, topicID, v[1])
	}
	return nil
}

func b01(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// committedGroup reads a group's next offset and the topic's id at once.
// KEYS: groups, meta. ARGV: field. An offset stored on an earlier topic of
// the same name is not returned.
var committedGroup = redis.NewScript(`
local cur = redis.call('HGET', KEYS[2], 'id') or ''
local off = redis.call('HGET', KEYS[1], ARGV[1])
local was = redis.call('HGET', KEYS[1], ARGV[1] .. ':id') or ''
if off == false or was ~= cur then return {'', cur} end
return {off, cur}
`)

// Committed returns a group's committed next offset (ok false if none).
func (r *Redis) Committed(ctx context.Context, group, topic string, partition int32) (next int64, ok bool, err error) {
	next, ok, _, err = r.CommittedID(ctx, group, topic, partition)
	return next, ok, err
}

// CommittedID is Committed plus the id of the topic (read in the same
// atomic step), for CommitOn and HighWatermarkID. An offset committed on
// an earlier topic of the same name is not returned.
func (r *Redis) CommittedID(ctx context.Context, group, topic string, partition int32) (next int64, ok bool, topicID string, err error) {
	field := group + ":" + strconv.Itoa(int(partition))
	v, err := committedGroup.Run(ctx, r.c, []string{topicKey(topic, "groups"), topicKey(topic, "meta")}, field).StringSlice()
	if err == nil && len(v) != 2 {
		err = fmt.Errorf("unexpected reply %v", v)
	}
	if err != nil {
		return 0, false, "", fmt.Errorf("committed %s %s[%d]: %w", group, topic, partition, err)
	}
	if v[0] == "" {
		return 0, false, v[1], nil
	}
	next, err = strconv.ParseInt(v[0], 10, 64)
	if err != nil {
		return 0, false, "", fmt.Errorf("committed %s %s[%d]: %w", group, topic, partition, err)
	}
	return next, true, v[1], nil
}

// HighWatermark returns the next offset a partition will get.
func (r *Redis) HighWatermark(ctx context.Context, topic string, partition int32) (int64, error) {
	n, _, err := r.HighWatermarkID(ctx, topic, partition)
	return n, err
}

// HighWatermarkID returns the next offset a partition will get and the
// topic's id, read together: 0 and "" when the topic does not exist.
func (r *Redis) HighWatermarkID(ctx context.Context, topic string, partition int32) (int64, string, error) {
	v, err := r.c.HMGet(ctx, topicKey(topic, "meta"), "hw:"+strconv.Itoa(int(partition)), "id").Result()
	if err != nil {
		return 0, "", fmt.Errorf("end of %s[%d]: %w", topic, partition, err)
	}
	var n int64
	if s, ok := v[0].(string); ok {
		if n, err = strconv.ParseInt(s, 10, 64); err != nil {
			return 0, "", fmt.Errorf("end of %s[%d]: %w", topic, partition, err)
		}
	}
	id, _ := v[1].(string)
	return n, id, nil
}

// OffsetForTime returns the first offset of a partition whose message is
// at or after t (the high watermark when there is none).
func (r *Redis) OffsetForTime(ctx context.Context, topic string, partition int32, t time.Time) (int64, error) {
	from := int64(0)
	for {
		msgs, err := r.Fetch(ctx, topic, partition, from, 1000, 0)
		if err != nil {
			return 0, err
		}
		if len(msgs) == 0 {
			return r.HighWatermark(ctx, topic, partition)
		}
		for _, m := range msgs {
			if !m.Time.Before(t) {
				return m.Offset, nil
			}
		}
		from = msgs[len(msgs)-1].Offset + 1
	}
}

// Delete removes a topic and everything stored for it.
func (r *Redis) Delete(ctx context.Context, topic string) error {
	n, err := r.Partitions(ctx, topic)
	if errors.Is(err, ErrUnknownTopic) {
		n, err = 0, nil
	}
	if err != nil {
		return err
	}
	keys := []string{topicKey(topic, "meta"), topicKey(topic, "fence"), topicKey(topic, "groups")}
	for p := range n {
		keys = append(keys, partKey(topic, p))
	}
	r.mu.Lock()
	delete(r.parts, topic)
	r.mu.Unlock()
	r.repliesMu.Lock()
	for _, k := range keys[3:] {
		delete(r.replies, k)
	}
	r.repliesMu.Unlock()
	return r.c.Del(ctx, keys...).Err()
}

// newTopicID names one life of a topic.
func newTopicID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// encodeHeaders packs headers as (uvarint len, bytes) pairs.
func encodeHeaders(hs []Header) []byte {
	if len(hs) == 0 {
		return nil
	}
	var b []byte
	for _, h := range hs {
		b = binary.AppendUvarint(b, uint64(len(h.Key)))
		b = append(b, h.Key...)
		b = binary.AppendUvarint(b, uint64(len(h.Value)))
		b = append(b, h.Value...)
	}
	return b
}

func decodeHeaders(b []byte) []Header {
	var hs []Header
	next := func() ([]byte, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, false
		}
		v := b[k : k+int(n)]
		b = b[k+int(n):]
		return v, true
	}
	for len(b) > 0 {
		k, ok1 := next()
		v, ok2 := next()
		if !ok1 || !ok2 {
			break
		}
		hs = append(hs, Header{Key: string(k), Value: v})
	}
	return hs
}
