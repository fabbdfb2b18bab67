package datagen

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/rivven/rivven-connect/events"
)

// generator produces the stream. Everything it emits for sequence number n
// depends only on the seed and on events 0..n-1, never on batching or
// timing, which is what makes seeded runs and resumes reproducible.
type generator struct {
	pat     *pattern
	rng     *rand.Rand
	cdc     bool
	logical bool          // seeded: timestamps come from the logical clock
	step    time.Duration // logical clock tick per event
	stream  string
	ns      *string

	seq     uint64 // sequence number of the next event
	pool    []live // cdc_mode: rows that exist, for updates and deletes
	scratch []byte // row buffer reused while skipping records
}

// live is a row the cdc stream has inserted and not deleted.
type live struct {
	id      uint64
	created time.Time // kept across updates (users.created_at)
	row     []byte    // exactly the JSON last emitted for the row
}

// change is one generated event before it becomes an *events.Event.
type change struct {
	typ  events.Type
	id   uint64
	data []byte
}

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

// event generates the next event; now is the wall clock, used unless the
// run is seeded.
func (g *generator) event(now time.Time) *events.Event {
	seq := g.seq
	ts := g.clock(seq, now)
	c := g.next(ts, true)
	s := &slot{seq: seq, src: events.SourceInfo{Connector: "datagen", Table: g.stream}}
	e := &s.ev
	e.Type = c.typ
	e.Stream = g.stream
	if g.ns != nil {
		s.ns = *g.ns
		e.Namespace = &s.ns
	}
	e.Timestamp = ts
	e.Data = events.RawPayload(c.data)
	e.Metadata.Position = strconv.FormatUint(seq, 10)
	e.Metadata.Sequence = &s.seq
	e.Key = g.pat.key(make([]byte, 0, len(g.pat.pk)+24), c.id)
	e.Source = &s.src
	return e
}

// skip generates and discards events until seq n, so that a seeded run
// resumed at n continues exactly like one that never stopped.
func (g *generator) skip(n uint64) {
	for g.seq < n {
		g.next(g.clock(g.seq, time.Time{}), false)
	}
}

// next generates the change for g.seq and advances. With keep false the
// data is not returned (the caller discards it), which lets records reuse a
// scratch buffer; rows the cdc pool keeps are always fresh.
func (g *generator) next(ts time.Time, keep bool) change {
	seq := g.seq
	g.seq++
	id := seq + 1 // ids start at 1 and are never reused
	if !g.cdc {
		if !keep {
			g.scratch = g.pat.row(g, g.scratch[:0], id, seq, ts, ts)
			return change{}
		}
		return change{events.Record, id, g.pat.row(g, g.fresh(0), id, seq, ts, ts)}
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
		row := clip(g.pat.row(g, g.fresh(0), id, seq, ts, ts))
		r := live{id: id, created: ts, row: row}
		if len(g.pool) < poolSize {
			g.pool = append(g.pool, r)
		} else {
			// Forget a random row: it stays alive downstream but is never
			// changed again, which keeps memory bounded.
			g.pool[g.rng.IntN(len(g.pool))] = r
		}
		return change{events.Insert, id, row}
	case events.Update:
		cur := &g.pool[g.rng.IntN(len(g.pool))]
		if !keep {
			cur.row = clip(g.pat.row(g, g.fresh(0), cur.id, seq, cur.created, ts))
			return change{}
		}
		d := g.fresh(len(cur.row) + len(`{"before":,"after":}`))
		d = append(d, `{"before":`...)
		d = append(d, cur.row...)
		d = append(d, `,"after":`...)
		at := len(d)
		d = g.pat.row(g, d, cur.id, seq, cur.created, ts)
		cur.row = d[at:len(d):len(d)]
		d = append(d, '}')
		return change{events.Update, cur.id, d}
	default:
		i := g.rng.IntN(len(g.pool))
		gone := g.pool[i]
		last := len(g.pool) - 1
		g.pool[i] = g.pool[last]
		g.pool[last] = live{}
		g.pool = g.pool[:last]
		return change{events.Delete, gone.id, gone.row}
	}
}

// fresh returns a new buffer for a row; extra is room beyond the row.
// Rows are never reused: consumers keep the events' bytes.
func (g *generator) fresh(extra int) []byte {
	return make([]byte, 0, g.pat.size+extra)
}

// clip caps b so that nobody can append into bytes that follow it.
func clip(b []byte) []byte { return b[:len(b):len(b)] }
