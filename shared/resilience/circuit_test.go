package resilience

import (
	"testing"
	"time"
)

func TestCircuit(t *testing.T) {
	now := time.Unix(1000, 0)
	b := NewCircuit(CircuitConfig{Enabled: true, FailureThreshold: 2, ResetTimeoutSecs: 30, SuccessThreshold: 2})
	b.Now = func() time.Time { return now }
	step := func(want bool, ok bool) {
		t.Helper()
		if got := b.Allow(); got != want {
			t.Fatalf("Allow = %v, want %v", got, want)
		}
		if want {
			b.Done(ok)
		}
	}
	step(true, false)
	step(true, true) // a success resets the count
	step(true, false)
	step(true, false) // second consecutive failure: open
	step(false, false)
	now = now.Add(30 * time.Second)
	if !b.Allow() { // half-open: one probe
		t.Fatal("no probe after reset_timeout")
	}
	if b.Allow() {
		t.Fatal("a second probe while one is out")
	}
	b.Done(false) // the probe failed: open again
	step(false, false)
	now = now.Add(30 * time.Second)
	step(true, true)
	step(true, true) // success_threshold probes: closed
	step(true, false)
	step(true, true)
}
