package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrFenced is the error every fenced write matches (errors.Is): a newer
// instance of the connector holds a higher epoch, so this one must stop.
// Restarting cannot help, which is why runners treat it as fatal.
var ErrFenced = errors.New("fenced")

// FencedError says which epoch was refused and which one superseded it.
type FencedError struct {
	Connector string
	Epoch     int64 // the refused writer's epoch
	Current   int64 // the newer epoch in force
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("fenced: %s epoch %d was superseded by epoch %d (a newer instance took over)", e.Connector, e.Epoch, e.Current)
}

// Is makes errors.Is(err, ErrFenced) hold.
func (e *FencedError) Is(target error) bool { return target == ErrFenced }

// EpochSuffix names the key holding a connector's current epoch.
const EpochSuffix = "epoch"

// Fencer is a store that hands out epochs, the fencing tokens that let a
// newer instance of a connector shut out an older one (Kleppmann's fencing
// tokens): every commit carries the writer's epoch and is refused, in the
// same atomic step, once a higher epoch exists.
type Fencer interface {
	// AcquireEpoch takes a new epoch for connector, higher than every
	// epoch handed out before; it fences all older instances.
	AcquireEpoch(ctx context.Context, connector string, now time.Time) (int64, error)
	// Epoch returns the connector's current epoch (0 when none was taken).
	Epoch(ctx context.Context, connector string) (int64, error)
	// CommitOffsetFenced is CommitOffset refused with a *FencedError when
	// a higher epoch than epoch exists.
	CommitOffsetFenced(ctx context.Context, connector string, epoch int64, key string, position []byte) error
}

// ClientProvider is a store whose Redis client other shared packages may
// use for their own scripts over a connector's keys (the breaker and
// ledger in resilience, the Redis Streams transport).
type ClientProvider interface {
	Client() redis.UniversalClient
}

var (
	_ Fencer         = (*Redis)(nil)
	_ ClientProvider = (*Redis)(nil)
)

// Client returns the underlying client.
func (r *Redis) Client() redis.UniversalClient { return r.client }

// acquireEpoch sets the epoch to max(current+1, now in ms). A plain INCR
// would be enough on a Redis that never loses a write; the clock term is
// the mitigation for one that does: after a failover that lost the last
// INCR, the next instance still gets an epoch above the lost one as long as
// it starts later (by wall clock) than the instance that took it.
var acquireEpoch = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1])) or 0
local e = cur + 1
local now = tonumber(ARGV[1])
if now > e then e = now end
redis.call('SET', KEYS[1], e)
return e
`)

// commitFenced writes one offset unless a newer epoch exists; it returns 0
// when written, else the newer epoch.
var commitFenced = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1])) or 0
if cur > tonumber(ARGV[1]) then return cur end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 0
`)

// AcquireEpoch implements Fencer.
func (r *Redis) AcquireEpoch(ctx context.Context, connector string, now time.Time) (int64, error) {
	if err := ValidateConnector(connector); err != nil {
		return 0, r.wrap("acquire epoch", err)
	}
	e, err := acquireEpoch.Run(ctx, r.client, []string{Key(connector, EpochSuffix)}, now.UnixMilli()).Int64()
	if err != nil {
		return 0, r.wrap("acquire epoch", err)
	}
	return e, nil
}

// Epoch implements Fencer.
func (r *Redis) Epoch(ctx context.Context, connector string) (int64, error) {
	if err := ValidateConnector(connector); err != nil {
		return 0, r.wrap("read epoch", err)
	}
	e, err := r.client.Get(ctx, Key(connector, EpochSuffix)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, r.wrap("read epoch", err)
	}
	return e, nil
}

// CommitOffsetFenced implements Fencer.
func (r *Redis) CommitOffsetFenced(ctx context.Context, connector string, epoch int64, key string, position []byte) error {
	if err := ValidateConnector(connector); err != nil {
		return r.wrap("commit offset", err)
	}
	keys := []string{Key(connector, EpochSuffix), Key(connector, offsetsSuffix)}
	cur, err := commitFenced.Run(ctx, r.client, keys, epoch, key, position).Int64()
	if err != nil {
		return r.wrap("commit offset", err)
	}
	if cur != 0 {
		return &FencedError{Connector: connector, Epoch: epoch, Current: cur}
	}
	return nil
}
