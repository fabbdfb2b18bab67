package resilience

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rivven/rivven-connect/shared/state"
)

// DedupMode says how a ledger recognises a redelivered record.
type DedupMode int

const (
	// DedupNone keeps no delivery ledger: in-process transports whose
	// record IDs do not outlive the process (the local emulator).
	DedupNone DedupMode = iota
	// DedupOffsets is for ordered partitions (Kafka, Kinesis, Redis
	// Streams): per (topic, partition) the committed next offset, below
	// which everything is done, plus the IDs of records that succeeded
	// after a failed one in the same batch (they come back with it).
	DedupOffsets
	// DedupIDs is for unordered queues (SQS, Pub/Sub): a set of done
	// message IDs, each kept for the ledger's TTL.
	DedupIDs
)

// Suffixes of a connector's ledger keys (state.Key(connector, suffix)).
const (
	LedgerSuffix   = "ledger"   // HASH "<topic>:<partition>" → next offset
	DedupSuffix    = "dedup"    // ZSET member → expiry (ms)
	AttemptsSuffix = "attempts" // HASH member → failed deliveries
)

// DefaultDedupTTL is how long a done message ID is remembered when the
// ledger is not told otherwise: longer than any trigger's redelivery delay
// under default settings (SQS visibility timeout, Pub/Sub ack deadline
// plus retries), short enough to keep the set small.
const DefaultDedupTTL = time.Hour

// LedgerConfig configures a Ledger.
type LedgerConfig struct {
	Connector string
	// Breaker is the circuit breaker policy; nil = no breaker.
	Breaker *BreakerConfig
	Dedup   DedupMode
	// TTL is how long done IDs and failure counts are kept (default
	// DefaultDedupTTL).
	TTL time.Duration
	// Epoch is the fencing token of a single-owner instance (a
	// long-lived sink service); 0 for serverless instances, which run
	// many at once by design and rely on the ledger alone.
	Epoch int64
	Now   func() time.Time // nil = wall clock
}

// Ledger is everything a sink handler asks Redis about a batch, in two
// round trips: Begin before writing (fence check, breaker admission, which
// records are already done, how often each failed) and End after
// (breaker outcome, offset commits, done IDs, failure counts), each one
// atomic Lua script over the connector's keys.
type Ledger struct {
	c    redis.Cmdable
	cfg  LedgerConfig
	keys []string
	brk  [3]int64 // reset ms, failure threshold, success threshold
}

// NewLedger returns the ledger of cfg.Connector.
func NewLedger(c redis.Cmdable, cfg LedgerConfig) (*Ledger, error) {
	if err := state.ValidateConnector(cfg.Connector); err != nil {
		return nil, err
	}
	if cfg.Breaker != nil {
		if err := cfg.Breaker.Validate(); err != nil {
			return nil, fmt.Errorf("circuit_breaker: %w", err)
		}
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultDedupTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Ledger{c: c, cfg: cfg}
	for _, s := range []string{BreakerSuffix, LedgerSuffix, DedupSuffix, AttemptsSuffix, state.EpochSuffix} {
		l.keys = append(l.keys, state.Key(cfg.Connector, s))
	}
	if b := cfg.Breaker; b != nil {
		l.brk = [3]int64{b.ResetTimeout.Milliseconds(), int64(b.FailureThreshold), int64(b.SuccessThreshold)}
	}
	return l, nil
}

// Config returns the ledger's configuration.
func (l *Ledger) Config() LedgerConfig { return l.cfg }

// BreakerSnapshot reads the state of the ledger's breaker (the zero
// Snapshot, Closed, without one).
func (l *Ledger) BreakerSnapshot(ctx context.Context) (Snapshot, error) {
	if l.cfg.Breaker == nil {
		return Snapshot{}, nil
	}
	return readBreaker(ctx, l.c, l.keys[0])
}

// Item identifies one delivered record to the ledger.
type Item struct {
	Stream string // "<topic>:<partition>": the offset ledger's field
	Offset int64
	// Member is the record's ID, unique within the connector; "" names
	// it Stream + ":" + the decimal Offset (a record of a log, whose
	// offset is its ID). Begin sends such records of one stream with
	// consecutive offsets as one range, however many there are.
	Member string
}

// MemberOf is the member an Item with no Member stands for.
func MemberOf(stream string, offset int64) string {
	return stream + ":" + strconv.FormatInt(offset, 10)
}

// Admission is Begin's answer.
type Admission struct {
	Allowed  bool // false: the breaker is open; write nothing
	Probe    bool // this batch is the half-open probe
	State    BreakerState
	Failures int
	Done     []bool // per item: already done (a redelivery) — skip it
	Attempts []int  // per item: failed deliveries so far (ledger count)
	// ProbeIn, when the breaker refused the batch, is how long until it
	// admits the next probe.
	ProbeIn time.Duration
}

// KEYS: 1 breaker, 2 offsets, 3 dedup, 4 attempts, 5 epoch.
// ARGV: now, breaker on, reset ms, failure thr, success thr, epoch, mode,
// n (items), r (runs), then r × (stream, offsets, member): a run is one
// item (offsets is its offset, member its name) or, with member "", the
// items of stream at offsets "<first>:<count>" (or just "<offset>"), each
// named stream:offset. A batch of a log partition is one run, so its size
// costs the script a loop, not arguments: the per-item lookups only
// happen while the done set or the failure counts exist, which they do
// only after failures.
var ledgerBegin = redis.NewScript(breakerLua + `
local now, epoch, mode, n, nr = tonumber(ARGV[1]), tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
if epoch > 0 then
  local cur = tonumber(redis.call('GET', KEYS[5])) or 0
  if cur > epoch then return {'FENCED', cur} end
end
local allowed, probe, st, fails, wait = 1, 0, 0, 0, 0
if ARGV[2] == '1' then
  local b = br_load(KEYS[1])
  allowed, probe = br_allow(KEYS[1], b, now, tonumber(ARGV[3]))
  st, fails = b.s, b.f
  if allowed == 0 then wait = br_wait(b, now, tonumber(ARGV[3])) end
end
local done, tries = {}, {}
if mode ~= 'n' and n > 0 then
  local dedup = redis.call('EXISTS', KEYS[3]) == 1
  local att = redis.call('EXISTS', KEYS[4]) == 1
  local wm = {}
  local i = 0
  for r = 0, nr - 1 do
    local field, spec, named = ARGV[10 + r*3], ARGV[11 + r*3], ARGV[12 + r*3]
    local first, count = tonumber(spec), 1
    if first == nil then
      local c = string.find(spec, ':', 1, true)
      first, count = tonumber(string.sub(spec, 1, c - 1)), tonumber(string.sub(spec, c + 1))
    end
    local w = -1
    if mode == 'o' then
      w = wm[field]
      if w == nil then
        w = tonumber(redis.call('HGET', KEYS[2], field)) or -1
        wm[field] = w
      end
    end
    for off = first, first + count - 1 do
      local d = 0
      if mode == 'o' and off < w then d = 1 end
      local member = named
      if d == 0 and (dedup or att) and member == '' then member = field .. ':' .. string.format('%d', off) end
      if d == 0 and dedup then
        local exp = tonumber(redis.call('ZSCORE', KEYS[3], member))
        if exp and exp > now then d = 1 end
      end
      local a = 0
      if d == 0 and att then a = tonumber(redis.call('HGET', KEYS[4], member)) or 0 end
      i = i + 1
      done[i] = d
      if att then tries[i] = a end
    end
  end
end
-- Flags and counts travel as two strings: far cheaper to build and parse
-- than nested arrays of n integers. The prefixes keep them strings for
-- Lua implementations that turn a numeric-looking result into a number.
-- They are joined in slices: gopher-lua (the embedded store) pushes every
-- element of a table.concat onto a fixed-size stack, which a batch of a
-- few thousand records overflows; real Redis has no such limit.
local function join(t, sep)
  local parts = {}
  for i = 1, #t, 500 do
    parts[#parts + 1] = table.concat(t, sep, i, math.min(i + 499, #t))
  end
  return table.concat(parts, sep)
end
return {'OK', allowed, probe, st, fails, 'd' .. join(done, ''), 't' .. join(tries, ','), wait}
`)

// KEYS as for begin. ARGV: now, breaker on, reset ms, failure thr,
// success thr, epoch, outcome (s|f|-), probe, ttl ms, #commits, #done,
// #failed, #clear, then commits as (stream, next offset) pairs, done
// members, failed members, members to clear.
var ledgerEnd = redis.NewScript(breakerLua + `
local now, epoch, outcome, probe, ttl = tonumber(ARGV[1]), tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
local nc, nd, nf, nx = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
if epoch > 0 then
  local cur = tonumber(redis.call('GET', KEYS[5])) or 0
  if cur > epoch then return {'FENCED', cur} end
end
local st, wait = -1, 0
if ARGV[2] == '1' then
  local b = br_load(KEYS[1])
  if outcome == 's' then
    br_success(KEYS[1], b, probe, tonumber(ARGV[5]))
  elseif outcome == 'f' then
    br_failure(KEYS[1], b, now, tonumber(ARGV[4]))
  elseif probe == 1 and b.s == 2 then
    -- a probe that wrote nothing proves nothing: free the slot
    redis.call('HSET', KEYS[1], 'p', 0)
    b.p = 0
  end
  st = b.s
  if b.s ~= 0 then wait = br_wait(b, now, tonumber(ARGV[3])) end
end
local i = 14
for j = 1, nc do
  local f, o = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local w = tonumber(redis.call('HGET', KEYS[2], f)) or -1
  if o > w then redis.call('HSET', KEYS[2], f, o) end
end
if nd > 0 then
  local exp = now + ttl
  for j = 1, nd do
    redis.call('ZADD', KEYS[3], exp, ARGV[i])
    i = i + 1
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  redis.call('PEXPIRE', KEYS[3], ttl)
end
for j = 1, nf do
  redis.call('HINCRBY', KEYS[4], ARGV[i], 1)
  i = i + 1
end
if nf > 0 then redis.call('PEXPIRE', KEYS[4], ttl) end
for j = 1, nx do
  redis.call('HDEL', KEYS[4], ARGV[i])
  i = i + 1
end
return {'OK', st, wait}
`)

func (l *Ledger) mode() string {
	switch l.cfg.Dedup {
	case DedupOffsets:
		return "o"
	case DedupIDs:
		return "u"
	}
	return "n"
}

func (l *Ledger) fenced(cur any) error {
	c, _ := cur.(int64)
	return &state.FencedError{Connector: l.cfg.Connector, Epoch: l.cfg.Epoch, Current: c}
}

// Begin checks the fence, asks the breaker and looks every item up, in
// one round trip. With a breaker the caller must call End whenever Begin
// admitted it, so the outcome (and a probe's lease) is recorded.
func (l *Ledger) Begin(ctx context.Context, items []Item) (Admission, error) {
	mode := l.mode()
	n := len(items)
	if mode == "n" {
		n = 0
	}
	args := make([]any, 0, 9+3*min(n, 16))
	args = append(args, l.cfg.Now().UnixMilli(), b2i(l.cfg.Breaker != nil), l.brk[0], l.brk[1], l.brk[2], l.cfg.Epoch, mode, n, 0)
	runs := 0
	for i := 0; i < n; {
		it := items[i]
		j := i + 1
		if it.Member == "" {
			for j < n && items[j].Member == "" && items[j].Stream == it.Stream && items[j].Offset == it.Offset+int64(j-i) {
				j++
			}
		}
		if j-i == 1 {
			args = append(args, it.Stream, it.Offset, it.Member)
		} else {
			args = append(args, it.Stream, strconv.FormatInt(it.Offset, 10)+":"+strconv.Itoa(j-i), "")
		}
		runs++
		i = j
	}
	args[8] = runs
	v, err := ledgerBegin.Run(ctx, l.c, l.keys, args...).Slice()
	if err != nil {
		return Admission{}, fmt.Errorf("ledger: %w", err)
	}
	if len(v) > 0 && v[0] == "FENCED" {
		return Admission{}, l.fenced(v[1])
	}
	if len(v) != 8 {
		return Admission{}, fmt.Errorf("ledger: unexpected reply %v", v)
	}
	wait, _ := v[7].(int64)
	a := Admission{Allowed: v[1] == int64(1), Probe: v[2] == int64(1), State: BreakerState(v[3].(int64)), Failures: int(v[4].(int64)),
		ProbeIn: time.Duration(wait) * time.Millisecond}
	if n > 0 {
		done, _ := v[5].(string)
		tries, _ := v[6].(string)
		done, tries = strings.TrimPrefix(done, "d"), strings.TrimPrefix(tries, "t")
		if len(done) != n {
			return Admission{}, errors.New("ledger: reply does not match the batch")
		}
		a.Done, a.Attempts = make([]bool, n), make([]int, n)
		for i := range n {
			a.Done[i] = done[i] == '1'
		}
		if tries != "" {
			i := 0
			for f := range strings.SplitSeq(tries, ",") {
				if i < n {
					a.Attempts[i], _ = strconv.Atoi(f)
				}
				i++
			}
			if i != n {
				return Admission{}, errors.New("ledger: reply does not match the batch")
			}
		}
	}
	return a, nil
}

// Warm runs Begin's and End's scripts once on nothing — no breaker, no
// fence, no item — so that Redis holds them before the first batch: its
// Begin and End then send the script's hash only, where the first call of
// each would otherwise be answered NOSCRIPT and send the whole script (and
// the embedded store compiles each script once, here). It changes no key.
// A host calls it while it still waits for its first batch.
func (l *Ledger) Warm(ctx context.Context) error {
	now := l.cfg.Now().UnixMilli()
	if err := ledgerBegin.Run(ctx, l.c, l.keys, now, 0, 0, 0, 0, 0, "n", 0, 0).Err(); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	if err := ledgerEnd.Run(ctx, l.c, l.keys, now, 0, 0, 0, 0, 0, "-", 0, 0, 0, 0, 0, 0).Err(); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// Outcome is what a batch's write did, for the breaker.
type Outcome int

const (
	NoWrite      Outcome = iota // nothing was written (all done, dropped or dead-lettered)
	WriteOK                     // the sink took at least part of the batch
	WriteFailed                 // the sink took nothing
	WriteSkipped                // the breaker refused the batch
)

// Commit moves a stream's committed offset (never backwards).
type Commit struct {
	Stream string
	Next   int64 // the next offset to process
}

// Settlement is what End records.
type Settlement struct {
	Outcome Outcome
	Probe   bool     // Admission.Probe of this batch
	Commits []Commit // DedupOffsets: per stream, the new committed offset
	Done    []string // members to remember as done
	Failed  []string // members whose failure count goes up
	Clear   []string // members whose failure count is no longer needed
}

// empty reports whether End would change nothing but a closed breaker's
// zero failure count, so the caller can skip the round trip.
func (s *Settlement) empty() bool {
	return !s.Probe && len(s.Commits)+len(s.Done)+len(s.Failed)+len(s.Clear) == 0
}

// NeedsEnd reports whether End must be called after a Begin that answered
// a: always with a breaker unless the batch succeeded on a closed circuit
// with no failures counted, and whenever there is something to record.
func (l *Ledger) NeedsEnd(a Admission, s *Settlement) bool {
	if !s.empty() {
		return true
	}
	if l.cfg.Breaker == nil {
		return false
	}
	switch s.Outcome {
	case WriteOK:
		return a.State != Closed || a.Failures > 0
	case WriteFailed:
		return true
	}
	return false
}

// End records a batch's outcome in one round trip and returns the
// breaker's state after it (Closed without a breaker) and, while it is not
// closed, how long until it admits the next probe.
func (l *Ledger) End(ctx context.Context, s Settlement) (BreakerState, time.Duration, error) {
	outcome := "-"
	switch s.Outcome {
	case WriteOK:
		outcome = "s"
	case WriteFailed:
		outcome = "f"
	}
	args := make([]any, 0, 13+2*len(s.Commits)+len(s.Done)+len(s.Failed)+len(s.Clear))
	args = append(args, l.cfg.Now().UnixMilli(), b2i(l.cfg.Breaker != nil), l.brk[0], l.brk[1], l.brk[2], l.cfg.Epoch,
		outcome, b2i(s.Probe), l.cfg.TTL.Milliseconds(), len(s.Commits), len(s.Done), len(s.Failed), len(s.Clear))
	for _, c := range s.Commits {
		args = append(args, c.Stream, c.Next)
	}
	for _, list := range [][]string{s.Done, s.Failed, s.Clear} {
		for _, m := range list {
			args = append(args, m)
		}
	}
	v, err := ledgerEnd.Run(ctx, l.c, l.keys, args...).Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("ledger: %w", err)
	}
	if len(v) > 0 && v[0] == "FENCED" {
		return 0, 0, l.fenced(v[1])
	}
	if len(v) != 3 {
		return 0, 0, fmt.Errorf("ledger: unexpected reply %v", v)
	}
	st, _ := v[1].(int64)
	if st < 0 {
		st = 0
	}
	wait, _ := v[2].(int64)
	return BreakerState(st), time.Duration(wait) * time.Millisecond, nil
}

// StreamOf is the ledger field of a topic partition.
func StreamOf(topic string, partition int32) string {
	return topic + ":" + strconv.FormatInt(int64(partition), 10)
}

// Committed returns the committed next offset of a stream (-1 if none).
func (l *Ledger) Committed(ctx context.Context, stream string) (int64, error) {
	v, err := l.c.HGet(ctx, l.keys[1], stream).Int64()
	if errors.Is(err, redis.Nil) {
		return -1, nil
	}
	return v, err
}
