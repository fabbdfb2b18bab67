package pipeline

import (
	"time"

	"github.com/rivven/rivven-connect/shared/resilience"
)

// Backoff is the restart policy of runners: start at Initial, multiply by
// Multiplier after each failed attempt, never above Max. The reference
// values are 1 s, ×2, 60 s.
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64
}

// RestartBackoff is the documented runner restart policy.
var RestartBackoff = Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 2}

// Delay returns the wait before restart attempt n (n ≥ 1).
func (b Backoff) Delay(n int) time.Duration {
	d := float64(b.Initial)
	for i := 1; i < n; i++ {
		d *= b.Multiplier
		if d >= float64(b.Max) {
			return b.Max
		}
	}
	return min(time.Duration(d), b.Max)
}

// Clock lets tests replace time; it is the one resilience defines.
type Clock = resilience.Clock

// RealClock is the wall clock.
type RealClock = resilience.RealClock
