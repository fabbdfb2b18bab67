package pipeline

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/state"
	"github.com/rivven/rivven-connect/shared/testenv"
	"github.com/rivven/rivven-connect/shared/topic"
)

const realRedisAddr = "127.0.0.1:6379"

// storeBackend is a state store plus the address its server listens on
// (for tests that put a proxy in between).
type storeBackend struct {
	store *state.Redis
	addr  string
}

// redisBackends runs fn on the embedded store and on the real Redis
// (skipped locally when absent, a failure under CI).
func redisBackends(t *testing.T, fn func(t *testing.T, b storeBackend)) {
	t.Run("embedded", func(t *testing.T) {
		e, err := state.NewEmbedded()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close() })
		fn(t, storeBackend{e.Redis, e.Addr()})
	})
	t.Run("redis", func(t *testing.T) {
		testenv.RequireService(t, "redis", realRedisAddr)
		r, err := state.NewRedis("redis://" + realRedisAddr + "/0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		fn(t, storeBackend{r, realRedisAddr})
	})
}

// uniqueName is a connector or topic name no other run uses; its keys are
// deleted after the test.
func uniqueName(t *testing.T, c redis.UniversalClient, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%s-%d", prefix, strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano())
	t.Cleanup(func() {
		ctx := context.Background()
		for _, pattern := range []string{"rivven:{" + name + "}:*", "rivven:{sink:" + name + "}:*", "rivven:topic:{" + name + "*"} {
			keys, _ := c.Keys(ctx, pattern).Result()
			if len(keys) > 0 {
				c.Del(ctx, keys...)
			}
		}
	})
	return name
}

// chanSource emits the batches it is handed, one Emit each, and reports
// each Emit's result back; it stops when ctx is done or an Emit fails.
type chanSource struct {
	batches chan []*events.Event
	results chan error
}

func newChanSource() *chanSource {
	return &chanSource{batches: make(chan []*events.Event), results: make(chan error, 1)}
}

func (s *chanSource) Read(ctx context.Context, _ []byte, emit Emitter) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-s.batches:
			err := emit.Emit(ctx, b)
			s.results <- err
			if err != nil {
				return err
			}
		}
	}
}

// emit hands a batch to the running source and returns Emit's result.
func (s *chanSource) emit(t *testing.T, b []*events.Event) error {
	t.Helper()
	select {
	case s.batches <- b:
	case <-time.After(30 * time.Second):
		t.Fatal("source is not reading")
	}
	return <-s.results
}

// seqBatch is events from..to-1, each positioned at its number and keyed
// so they spread over partitions.
func seqBatch(from, to int) []*events.Event {
	var out []*events.Event
	for i := from; i < to; i++ {
		e := events.New(events.Insert, "seq", events.RawPayload(fmt.Appendf(nil, `{"n":%d}`, i)))
		e.Key = fmt.Appendf(nil, "k%d", i)
		e.Metadata.Position = fmt.Sprint(i)
		out = append(out, e)
	}
	return out
}

// readAll returns every message of a topic on the Redis transport.
func readAll(t *testing.T, tr *topic.Redis, name string) []topic.Message {
	t.Helper()
	ctx := context.Background()
	n, err := tr.Partitions(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	var out []topic.Message
	for p := range n {
		for from := int64(0); ; {
			msgs, err := tr.Fetch(ctx, name, int32(p), from, 1000, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) == 0 {
				break
			}
			out = append(out, msgs...)
			from = msgs[len(msgs)-1].Offset + 1
		}
	}
	return out
}

// waitFor polls cond until it holds (or fails the test after a generous
// bound); it orders steps, it asserts nothing about time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// proxy is a TCP proxy in front of Redis that a test can cut (refuse and
// drop connections), reset (RST every connection), slow down, and heal.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  string // pass | cut | reset | delay
	delay time.Duration
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, mode: "pass", conns: map[net.Conn]bool{}}
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.set("cut", 0)
		p.wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// set changes the mode; cut and reset also kill every open connection.
func (p *proxy) set(mode string, delay time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode, p.delay = mode, delay
	if mode == "cut" || mode == "reset" {
		for c := range p.conns {
			if tc, ok := c.(*net.TCPConn); ok && mode == "reset" {
				tc.SetLinger(0) // close with RST
			}
			c.Close()
		}
		clear(p.conns)
	}
}

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode := p.mode
		if mode == "cut" || mode == "reset" {
			if tc, ok := c.(*net.TCPConn); ok && mode == "reset" {
				tc.SetLinger(0)
			}
			c.Close()
			p.mu.Unlock()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			p.mu.Unlock()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			d := time.Duration(0)
			if p.mode == "delay" {
				d = p.delay
			}
			p.mu.Unlock()
			if d > 0 {
				time.Sleep(d)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			return
		}
	}
}
