package databricks

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/resilience"
)

func ids(from, n int) []*events.Event {
	out := make([]*events.Event, n)
	for i := range out {
		out[i] = ev(events.Insert, fmt.Sprintf(`{"id":%d,"customer":"c%d"}`, from+i, from+i))
	}
	return out
}

func tableIDs(f *fakeDatabricks) []string {
	var out []string
	for _, r := range f.tableRows(table) {
		out = append(out, fmt.Sprint(r["id"]))
	}
	slices.Sort(out)
	return out
}

func wantIDs(n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, fmt.Sprint(i))
	}
	slices.Sort(out)
	return out
}

// The stream fails after the server received a batch and before it
// acknowledged it: the sink opens a new stream, sends the batch again
// with the new stream's offset, and Write returns once that is
// acknowledged. The batch was not durable on the failed stream, so the
// table has every row once.
func TestStreamFailureMidBatchRecovers(t *testing.T) {
	f := newFakeDatabricks(t)
	ordersTable(f, false)
	s := newSink(t, f, f.config(table, "recovery_backoff_ms: 1\n"))
	f.failStream = func(stream, batch int) bool { return stream == 1 && batch == 2 }
	for i := 0; i < 3; i++ {
		if err := s.Write(context.Background(), ids(i*10, 10)); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	if got, want := tableIDs(f), wantIDs(30); !slices.Equal(got, want) {
		t.Errorf("table ids %v, want %v", got, want)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// Stream 1 took offsets 0 and 1 (1 failed); stream 2 took the failed
	// batch again as its offset 0, then the third batch as 1.
	if got := fmt.Sprint(f.offsets); got != "[[0 1] [0 1]]" {
		t.Errorf("offsets per stream %s", got)
	}
	if s.m.recoveries.Value() != 1 || s.m.acksOK.Value() != 3 || s.m.acksErr.Value() != 0 || s.m.okB.Value() != 3 || s.m.retried.Value() != 0 {
		t.Errorf("recoveries %d acks %d/%d batches %d retried %d", s.m.recoveries.Value(), s.m.acksOK.Value(), s.m.acksErr.Value(), s.m.okB.Value(), s.m.retried.Value())
	}
}

// With wait_for_ack false several batches are in flight when the stream
// fails; all of them are sent again, in order, on the new stream.
func TestRecoveryResendsEveryUnacknowledgedBatch(t *testing.T) {
	f := newFakeDatabricks(t)
	ordersTable(f, false)
	s := newSink(t, f, f.config(table, "wait_for_ack: false\nrecovery_backoff_ms: 1\n"))
	gate := make(chan struct{})
	f.ackGate = gate
	f.failStream = func(stream, batch int) bool { return stream == 1 && batch == 2 }
	for i := 0; i < 4; i++ {
		if err := s.Write(context.Background(), ids(i*5, 5)); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	// Acknowledge the first batch only; the server fails the stream on
	// reading the second, with batches 2-4 unacknowledged.
	gate <- struct{}{}
	go func() {
		for range 3 {
			gate <- struct{}{}
		}
	}()
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := tableIDs(f), wantIDs(20); !slices.Equal(got, want) {
		t.Errorf("table ids %v, want %v", got, want)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if got := fmt.Sprint(f.offsets); got != "[[0 1] [0 1 2]]" {
		t.Errorf("offsets per stream %s", got)
	}
}

// A stream failing after the server made a batch durable but before the
// sink read the acknowledgement is at-least-once: the batch is sent
// again and the table has it twice. (Zerobus ephemeral streams have no
// idempotency key; the README says so.)
func TestAckLostIsAtLeastOnce(t *testing.T) {
	f := newFakeDatabricks(t)
	ordersTable(f, false)
	s := newSink(t, f, f.config(table, "recovery_backoff_ms: 1\n"))
	f.loseAck = func(stream, batch int) bool { return stream == 1 && batch == 2 }
	for i := 0; i < 2; i++ {
		if err := s.Write(context.Background(), ids(i, 1)); err != nil {
			t.Fatal(err)
		}
	}
	got := tableIDs(f)
	if len(got) < 2 || !slices.Contains(got, "0") || !slices.Contains(got, "1") {
		t.Errorf("table ids %v", got)
	}
	var ones int
	for _, id := range got {
		if id == "1" {
			ones++
		}
	}
	if ones != 2 {
		t.Errorf("id 1 stored %d times after its acknowledgement was lost, want 2 (durable, then sent again): %v", ones, got)
	}
}

// Write does not return before the server acknowledged the batch.
func TestWriteWaitsForLaggingAcks(t *testing.T) {
	f := newFakeDatabricks(t)
	ordersTable(f, false)
	s := newSink(t, f, f.config(table, ""))
	gate := make(chan struct{})
	received := make(chan int64, 1)
	f.ackGate, f.received = gate, received
	done := make(chan error, 1)
	go func() { done <- s.Write(context.Background(), ids(0, 3)) }()
	<-received // the server has the batch and holds its ack
	select {
	case err := <-done:
		t.Fatalf("Write returned (%v) before the server acknowledged the batch", err)
	default:
	}
	if got := len(f.tableRows(table)); got != 0 {
		t.Fatalf("%d rows durable before the ack", got)
	}
	gate <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := len(f.tableRows(table)); got != 3 {
		t.Errorf("%d rows", got)
	}
}

// wait_for_ack false returns once sent; max_inflight_requests bounds
// what is unacknowledged, and Close waits for the rest.
func TestInflightLimitAndCloseFlush(t *testing.T) {
	f := newFakeDatabricks(t)
	ordersTable(f, false)
	s := newSink(t, f, f.config(table, "wait_for_ack: false\nbatch_size: 4\nmax_inflight_requests: 8\n"))
	gate := make(chan struct{})
	received := make(chan int64, 10)
	f.ackGate, f.received = gate, received
	for i := 0; i < 2; i++ {
		if err := s.Write(context.Background(), ids(i*4, 4)); err != nil {
			t.Fatal(err)
		}
	}
	<-received // the first batch; the second waits behind its ack
	done := make(chan error, 1)
	go func() { done <- s.Write(context.Background(), ids(8, 4)) }()
	select {
	case err := <-done:
		t.Fatalf("a third batch (12 records in flight, limit 8) was sent (%v)", err)
	default:
	}
	gate <- struct{}{} // acknowledge one batch: room for the third
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close(context.Background()) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with batches unacknowledged", err)
	default:
	}
	gate <- struct{}{}
	gate <- struct{}{}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if got, want := tableIDs(f), wantIDs(12); !slices.Equal(got, want) {
		t.Errorf("table ids %v", got)
	}
}

// A stream that stops acknowledging is failed after
// server_ack_timeout_ms and its batch sent again on a new stream.
func TestAckTimeoutRecoversTheStream(t *testing.T) {
	f := newFakeDatabricks(t)
	ordersTable(f, false)
	s := newSink(t, f, f.config(table, "server_ack_timeout_ms: 50\nrecovery_backoff_ms: 1\n"))
	f.noAck = func(stream int) bool { return stream == 1 }
	if err := s.Write(context.Background(), ids(0, 2)); err != nil {
		t.Fatal(err)
	}
	if got, want := tableIDs(f), wantIDs(2); !slices.Equal(got, want) || s.m.recoveries.Value() != 1 {
		t.Errorf("table ids %v, recoveries %d", got, s.m.recoveries.Value())
	}
}

// After the server's close-stream signal new batches go to a new stream
// while the old one's acknowledgements still count.
func TestCloseSignalMovesToANewStream(t *testing.T) {
	f := newFakeDatabricks(t)
	ordersTable(f, false)
	s := newSink(t, f, f.config(table, ""))
	f.closeSignal = func(stream, batch int) bool { return stream == 1 && batch == 1 }
	for i := 0; i < 3; i++ {
		if err := s.Write(context.Background(), ids(i, 1)); err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	offsets := fmt.Sprint(f.offsets)
	f.mu.Unlock()
	if offsets != "[[0] [0 1]]" || s.m.recoveries.Value() != 0 {
		t.Errorf("offsets per stream %s, recoveries %d", offsets, s.m.recoveries.Value())
	}
	if got, want := tableIDs(f), wantIDs(3); !slices.Equal(got, want) {
		t.Errorf("table ids %v", got)
	}
}

// Without recovery a failed stream fails the batch (Transient, so the
// connector-level retry sends it again on a new stream).
func TestBatchRetryWithoutRecovery(t *testing.T) {
	f := newFakeDatabricks(t)
	ordersTable(f, false)
	s := newSink(t, f, f.config(table, "recovery: false\ninitial_backoff_ms: 1\nmax_backoff_ms: 2\n"))
	f.failStream = func(stream, batch int) bool { return stream == 1 }
	if err := s.Write(context.Background(), ids(0, 2)); err != nil {
		t.Fatal(err)
	}
	if s.m.retried.Value() != 1 || s.m.acksErr.Value() != 1 || s.m.recoveries.Value() != 0 {
		t.Errorf("retried %d, acks.error %d, recoveries %d", s.m.retried.Value(), s.m.acksErr.Value(), s.m.recoveries.Value())
	}
	// Retries exhausted: the error is the stream's, classed Transient.
	f.failStream = func(int, int) bool { return true }
	err := s.Write(context.Background(), ids(2, 1))
	if err == nil || resilience.ClassOf(err) != resilience.Connection || !strings.Contains(err.Error(), "Transient") {
		t.Errorf("Write = %v (class %v)", err, resilience.ClassOf(err))
	}
	if s.m.retried.Value() != 3 || s.m.badB.Value() != 1 {
		t.Errorf("retried %d, batches.failed %d", s.m.retried.Value(), s.m.badB.Value())
	}
}

// The server refusing a stream for a reason retrying cannot fix (a
// record the table does not take) is Fatal, not retried.
func TestServerRejectionIsFatal(t *testing.T) {
	f := newFakeDatabricks(t)
	ordersTable(f, false)
	s := newSink(t, f, f.config(table, ""))
	f.mu.Lock()
	f.rejectOpen, f.rejectOpenFor = 5, 1 // codes.NotFound
	f.mu.Unlock()
	err := s.Write(context.Background(), ids(0, 1))
	if err == nil || resilience.ClassOf(err) != resilience.Fatal || s.m.retried.Value() != 0 {
		t.Errorf("Write = %v (class %v), retried %d", err, resilience.ClassOf(err), s.m.retried.Value())
	}
}
