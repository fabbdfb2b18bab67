package llm

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"
)

// Cache remembers answers for a while so that an event delivered again
// (a source re-reading after a restart, a trigger redelivering a batch
// whose write failed) is not sent to the model twice: the model is slow
// and billed per token. It is keyed by a hash of the whole request
// (provider, model, prompts, parameters), which is what an event id names
// for a transform, and also catches the same text in two events. It is
// in-process: a fresh process asks again.
type Cache[V any] struct {
	mu    sync.Mutex
	ttl   time.Duration
	max   int
	ll    *list.List
	items map[[32]byte]*list.Element
	now   func() time.Time
}

type cacheEntry[V any] struct {
	key     [32]byte
	v       V
	expires time.Time
}

// NewCache keeps up to max answers for ttl each; max 0 or ttl 0 is no cache.
func NewCache[V any](max int, ttl time.Duration) *Cache[V] {
	if max <= 0 || ttl <= 0 {
		return nil
	}
	return &Cache[V]{ttl: ttl, max: max, ll: list.New(), items: map[[32]byte]*list.Element{}, now: time.Now}
}

// Key hashes the parts of a request; parts are length-prefixed so that
// ("ab","c") and ("a","bc") differ.
func Key(parts ...string) [32]byte {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		l := len(p)
		for i := range n {
			n[i] = byte(l >> (8 * i))
		}
		h.Write(n[:])
		h.Write([]byte(p))
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// Get returns a live answer.
func (c *Cache[V]) Get(k [32]byte) (V, bool) {
	var zero V
	if c == nil {
		return zero, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return zero, false
	}
	e := el.Value.(*cacheEntry[V])
	if c.now().After(e.expires) {
		c.ll.Remove(el)
		delete(c.items, k)
		return zero, false
	}
	c.ll.MoveToFront(el)
	return e.v, true
}

// Put stores an answer, evicting the least recently used beyond max.
func (c *Cache[V]) Put(k [32]byte, v V) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		e := el.Value.(*cacheEntry[V])
		e.v, e.expires = v, c.now().Add(c.ttl)
		c.ll.MoveToFront(el)
		return
	}
	c.items[k] = c.ll.PushFront(&cacheEntry[V]{key: k, v: v, expires: c.now().Add(c.ttl)})
	for c.ll.Len() > c.max {
		el := c.ll.Back()
		c.ll.Remove(el)
		delete(c.items, el.Value.(*cacheEntry[V]).key)
	}
}
