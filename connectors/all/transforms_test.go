package all

import (
	"context"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/connectors/transform/transformtest"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
)

// chain builds transforms the way a pipeline file declares them.
func chain(tb testing.TB, steps ...[2]string) connector.Transform {
	var c connector.Chain
	for _, s := range steps {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(s[1]), &n); err != nil {
			tb.Fatal(err)
		}
		t, err := catalog.Builder{}.NewTransform(context.Background(), s[0], &n, "transforms")
		if err != nil {
			tb.Fatal(err)
		}
		c = append(c, t)
	}
	return c
}

// BenchmarkTransformChain runs the reference documentation's five-step
// chain (unwrap, mask, rename/exclude, insert, filter) over CDC orders from
// datagen, in batches as a source runner would. One op is one event.
// "chain" times the transforms alone (datagen fills chunks of events while
// the timer is stopped); "datagen+chain" times both, as a source runner
// pays them.
func BenchmarkTransformChain(b *testing.B) {
	newChain := func(b *testing.B) connector.Transform {
		return chain(b,
			[2]string{"ExtractNewRecordState", "{delete_handling: rewrite, add_fields: [op]}"},
			[2]string{"MaskField", "{fields: [customer_id], mask_char: X}"},
			[2]string{"ReplaceField", "{rename: {total: amount}, exclude: [status]}"},
			[2]string{"InsertField", "{static: {source: rivven}}"},
			[2]string{"Filter", `{condition: "value.amount > 100"}`},
		)
	}
	run := func(b *testing.B, alone bool) {
		tr := newChain(b)
		src := newDatagen(b, true)
		var kept int
		ctx := context.Background()
		var chunk [][]*events.Event
		var held int
		var cpu time.Duration // process CPU while the timer runs
		cpuOK := true
		apply := func() error {
			c0, ok0 := processCPU()
			b.StartTimer()
			defer func() {
				b.StopTimer()
				c1, ok1 := processCPU()
				cpu += c1 - c0
				cpuOK = cpuOK && ok0 && ok1
			}()
			for _, batch := range chunk {
				out, err := tr.Apply(ctx, batch)
				if err != nil {
					return err
				}
				kept += len(out)
			}
			chunk, held = chunk[:0], 0
			return nil
		}
		b.ReportAllocs()
		b.ResetTimer()
		if alone {
			b.StopTimer()
		}
		err := src.Read(ctx, nil, connector.EmitterFunc(func(ctx context.Context, batch []*events.Event) error {
			if !alone {
				out, err := tr.Apply(ctx, batch)
				kept += len(out)
				return err
			}
			// The emitter's batch is the source's to reuse: keep a copy.
			chunk = append(chunk, append([]*events.Event(nil), batch...))
			if held += len(batch); held >= 10000 {
				return apply()
			}
			return nil
		}))
		if err == nil && alone {
			err = apply()
		}
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if b.N >= 1000 && (kept == 0 || kept == b.N) {
			b.Fatalf("the filter kept %d of %d", kept, b.N)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		if alone && cpuOK {
			// CPU time holds on a loaded machine, where ns/op counts the
			// time the benchmark waited for a core too.
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/event")
		}
	}
	b.Run("chain", func(b *testing.B) { run(b, true) })
	b.Run("datagen+chain", func(b *testing.B) { run(b, false) })
}

// FuzzTransformConfig decodes arbitrary YAML as the config of every
// registered transform: problems or a built transform, never a panic; a
// built transform runs over each kind of event without panicking.
func FuzzTransformConfig(f *testing.F) {
	for _, s := range []string{
		"{}", "fields: [a, b.c]", "condition: value.x > 1", "routes: {a: b}\nfield: x",
		"routes: [{field: x, pattern: '^a', topic: t}]", "delete_handling: rewrite", "rename: {a: b}",
		"static: {a: 1}", "specs: {a: int64}", "fields: {ts: target}", "field: a.b", "condition: {equals: x}",
		"computations: [{target: t, type: concat, fields: [a, b]}]", "pattern: '(['", "- 1\n- 2", "null",
	} {
		f.Add(s)
	}
	evs := []*events.Event{
		events.New(events.Insert, "s", events.RawPayload([]byte(`{"a":1,"b":{"c":"x"},"x":"2020-01-01T00:00:00Z"}`))),
		events.New(events.Update, "s", events.RawPayload([]byte(`{"before":{"a":1},"after":{"a":2,"x":5}}`))),
		events.New(events.Delete, "s", events.RawPayload([]byte(`{"a":1}`))),
		events.New(events.Schema, "s", events.RawPayload([]byte(`{"columns":[]}`))),
		events.New(events.Insert, "s", events.RawPayload([]byte(`[1,2]`))),
	}
	var entries []*catalog.Entry
	for _, e := range catalog.All() {
		if e.Kind == catalog.Transform {
			entries = append(entries, e)
		}
	}
	f.Fuzz(func(t *testing.T, src string) {
		var n yaml.Node
		if yaml.Unmarshal([]byte(src), &n) != nil {
			return
		}
		for _, e := range entries {
			c, err := e.Instantiate(context.Background(), &n, "transforms[0].config")
			if err != nil {
				continue
			}
			for _, ev := range evs {
				c.(connector.Transform).Apply(context.Background(), []*events.Event{ev.Clone()})
			}
		}
	})
}

// TestChainSameOnBytesAndMaps runs whole chains of the field transforms,
// which hand the event's split fields from one to the next, over every
// kind of row: what they pass on is what the same chain gives on decoded
// rows.
func TestChainSameOnBytesAndMaps(t *testing.T) {
	cases := transformtest.RawCases("total", "customer_id", "status")
	for _, steps := range [][][2]string{
		{
			{"ExtractNewRecordState", "{delete_handling: rewrite, add_fields: [op]}"},
			{"MaskField", "{fields: [customer_id], mask_char: X}"},
			{"ReplaceField", "{rename: {total: amount}, exclude: [status]}"},
			{"InsertField", "{static: {source: rivven}}"},
			{"Filter", `{condition: "value.amount != 3"}`},
			{"ValueToKey", "{fields: [id, amount]}"},
		},
		{
			{"MaskField", "{fields: [customer_id, note]}"},
			{"ReplaceField", "{rename: {total: amount, id: total}, exclude: [nested]}"},
			{"InsertField", "{static: {customer_id: 1}, overwrite: true}"},
			{"Filter", `{condition: "after.total == 7 or before.amount != null"}`},
			{"ValueToKey", "{fields: [total]}"},
			{"MaskField", "{fields: [amount], strategy: keep_last, keep_last: 2}"},
		},
	} {
		transformtest.SameOnBytesAndMaps(t, chain(t, steps...), cases)
	}
}
