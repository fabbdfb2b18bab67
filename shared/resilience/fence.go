package resilience

import "context"

type epochKey struct{}

// WithEpoch hands the writer's fencing token to a sink through the
// context of Write. Sinks whose target can make a write conditional (a SQL
// "UPDATE ... WHERE epoch <= $1", an object store precondition, a script
// like the Redis Streams transport's) should use it so that a stale
// instance's late write is refused by the target itself, which is the only
// place that can close the gap between the fence check and the write.
// Epoch 0 (no token) leaves ctx unchanged.
func WithEpoch(ctx context.Context, epoch int64) context.Context {
	if epoch == 0 {
		return ctx
	}
	return context.WithValue(ctx, epochKey{}, epoch)
}

// EpochFrom returns the fencing token of the current write (0 if none).
func EpochFrom(ctx context.Context) int64 {
	e, _ := ctx.Value(epochKey{}).(int64)
	return e
}
