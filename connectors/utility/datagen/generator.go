package datagen

import (
	"context"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/rivven/rivven-connect/events"
)

// generator produces the stream. Everything it emits for sequence number n
// depends only on the seed and on events 0..n-1, never on batching or
// timing, which is what makes seeded runs and resumes reproducible.
//
// A row is a pure function of a small rowState: its fields are drawn from
// an RNG seeded by the state's own seed. So the cdc pool keeps 40-byte
// states instead of JSON (no pointers for the GC to chase, no scattered
// bytes to copy), the "before" of an update is regenerated exactly, and
// skipping events on resume only draws numbers instead of writing JSON.
type generator struct {
	pat     *pattern
	rng     *rand.Rand // the stream's RNG: operations, picks, row seeds
	rowSrc  rand.PCG   // reseeded for each row
	rowRNG  *rand.Rand // draws from rowSrc
	cdc     bool
	logical bool          // seeded: timestamps come from the logical clock
	step    time.Duration // logical clock tick per event
	stream  string
	ns      *string

	seq    uint64     // sequence number of the next event
	pool   []rowState // cdc_mode: rows that exist, for updates and deletes
	slots  []slot     // unused slots of the current slab
	digits []byte     // scratch for a batch's positions
	ends   []int
}

func newGenerator(cfg *Config, pat *pattern) *generator {
	seed := rand.Uint64()
	if cfg.Seed != nil {
		seed = *cfg.Seed
	}
	step := time.Millisecond
	if cfg.EventsPerSecond > 0 {
		step = time.Second / time.Duration(cfg.EventsPerSecond)
	}
	g := &generator{
		pat:     pat,
		rng:     rand.New(rand.NewPCG(seed, pcgStream)),
		cdc:     cfg.CDCMode,
		logical: cfg.Seed != nil,
		step:    step,
		stream:  cfg.StreamName,
	}
	g.rowRNG = rand.New(&g.rowSrc)
	if cfg.Namespace != "" {
		g.ns = &cfg.Namespace
	}
	return g
}

// pcgStream is the second PCG seed word; fixed so that the user's seed
// alone defines the stream.
const pcgStream = 0x6461746167656e // "datagen"

// rowState is everything a row is generated from.
type rowState struct {
	id      uint64
	seed    uint64 // seeds the row's field values
	seq     uint64 // the event that last wrote the row
	created int64  // Unix ns of the insert; kept across updates
	written int64  // Unix ns of the last write
}

// change is one generated event before it becomes an *events.Event.
type change struct {
	typ  events.Type
	data []byte
	key  []byte
}

// slabSize is how many slots are allocated at once. Fewer allocations
// make the generator faster; the price is that an event kept by a consumer
// keeps its whole slab (about 24 KiB) alive.
const slabSize = 64

// slot puts an event and what its pointers point to in one allocation.
type slot struct {
	ev  events.Event
	seq uint64
	ns  string
	src events.SourceInfo
}

// clock returns the timestamp of event seq: logical when seeded, else now.
func (g *generator) clock(seq uint64, now time.Time) time.Time {
	if g.logical {
		return epoch.Add(time.Duration(seq) * g.step)
	}
	return now
}

// fill appends the next n events to batch; now is the wall clock, used
// unless the run is seeded.
func (g *generator) fill(batch []*events.Event, n int, now time.Time) []*events.Event {
	// The batch's positions share one string: one allocation instead of n.
	digits := g.digits[:0]
	ends := g.ends[:0]
	for i := range uint64(n) {
		digits = strconv.AppendUint(digits, g.seq+i, 10)
		ends = append(ends, len(digits))
	}
	g.digits, g.ends = digits, ends
	positions := string(digits)
	start := 0
	for _, end := range ends {
		batch = append(batch, g.event(now, positions[start:end]))
		start = end
	}
	return batch
}

// event generates the next event.
func (g *generator) event(now time.Time, position string) *events.Event {
	seq := g.seq
	ts := g.clock(seq, now)
	c := g.next(ts, true)
	if len(g.slots) == 0 {
		g.slots = make([]slot, slabSize)
	}
	s := &g.slots[0]
	g.slots = g.slots[1:]
	s.seq = seq
	s.src.Connector, s.src.Table = "datagen", g.stream
	e := &s.ev
	e.Type = c.typ
	e.Stream = g.stream
	if g.ns != nil {
		s.ns = *g.ns
		e.Namespace = &s.ns
	}
	e.Timestamp = ts
	e.Data = events.RawPayload(c.data)
	e.Metadata.Position = position
	e.Metadata.Sequence = &s.seq
	e.Key = c.key
	e.Source = &s.src
	return e
}

// skip advances to sequence n without building events, so that a seeded
// run resumed at n continues exactly like one that never stopped. It
// reports false when ctx ended first.
func (g *generator) skip(ctx context.Context, n uint64) bool {
	for g.seq < n {
		if g.seq%(1<<16) == 0 && ctx.Err() != nil {
			return false
		}
		g.next(g.clock(g.seq, time.Time{}), false)
	}
	return true
}

// next draws the change for g.seq and advances. With keep false it only
// updates the generator's state and returns nothing.
func (g *generator) next(ts time.Time, keep bool) change {
	seq := g.seq
	g.seq++
	at := ts.UnixNano()
	// ids start at 1 and are never reused
	born := rowState{id: seq + 1, seed: g.rng.Uint64(), seq: seq, created: at, written: at}
	if !g.cdc {
		if !keep {
			return change{}
		}
		return g.withKey(events.Record, g.appendRow(g.fresh(0), born), born.id)
	}

	op := events.Insert // the first change must be an insert
	if len(g.pool) > 0 {
		switch r := g.rng.IntN(100); {
		case r < 60:
			op = events.Insert
		case r < 90:
			op = events.Update
		default:
			op = events.Delete
		}
	}
	switch op {
	case events.Insert:
		if len(g.pool) < poolSize {
			g.pool = append(g.pool, born)
		} else {
			// Forget a random row: it stays alive downstream but is never
			// changed again, which keeps memory bounded.
			g.pool[g.rng.IntN(len(g.pool))] = born
		}
		if !keep {
			return change{}
		}
		return g.withKey(events.Insert, g.appendRow(g.fresh(0), born), born.id)
	case events.Update:
		cur := &g.pool[g.rng.IntN(len(g.pool))]
		before := *cur
		cur.seed, cur.seq, cur.written = born.seed, seq, at
		if !keep {
			return change{}
		}
		d := g.fresh(g.pat.size + len(`{"before":,"after":}`))
		d = append(d, `{"before":`...)
		d = g.appendRow(d, before)
		d = append(d, `,"after":`...)
		d = g.appendRow(d, *cur)
		return g.withKey(events.Update, append(d, '}'), cur.id)
	default:
		i := g.rng.IntN(len(g.pool))
		gone := g.pool[i]
		last := len(g.pool) - 1
		g.pool[i] = g.pool[last]
		g.pool = g.pool[:last]
		if !keep {
			return change{}
		}
		return g.withKey(events.Delete, g.appendRow(g.fresh(0), gone), gone.id)
	}
}

// appendRow appends the row r stands for. The same state always gives the
// same bytes: that is how an update's "before" equals what was emitted.
func (g *generator) appendRow(dst []byte, r rowState) []byte {
	g.rowSrc.Seed(r.seed, r.id)
	return g.pat.row(g.rowRNG, dst, r)
}

// withKey appends the key for id after the data in buf and splits the
// buffer between them, each capped so that neither can grow into the other.
func (g *generator) withKey(typ events.Type, buf []byte, id uint64) change {
	end := len(buf)
	buf = g.pat.key(buf, id)
	return change{typ: typ, data: buf[:end:end], key: buf[end:len(buf):len(buf)]}
}

// fresh returns a new buffer for a row and its key; extra is room beyond
// them. Buffers are never reused: consumers keep the events' bytes.
func (g *generator) fresh(extra int) []byte {
	return make([]byte, 0, g.pat.size+g.pat.keySize()+extra)
}
