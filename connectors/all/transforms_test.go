package all

import (
	"context"
	"testing"

	"go.yaml.in/yaml/v3"

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
func BenchmarkTransformChain(b *testing.B) {
	tr := chain(b,
		[2]string{"ExtractNewRecordState", "{delete_handling: rewrite, add_fields: [op]}"},
		[2]string{"MaskField", "{fields: [customer_id], mask_char: X}"},
		[2]string{"ReplaceField", "{rename: {total: amount}, exclude: [status]}"},
		[2]string{"InsertField", "{static: {source: rivven}}"},
		[2]string{"Filter", `{condition: "value.amount > 100"}`},
	)
	src := newDatagen(b, true)
	var kept int
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	err := src.Read(ctx, nil, connector.EmitterFunc(func(ctx context.Context, batch []*events.Event) error {
		out, err := tr.Apply(ctx, batch)
		kept += len(out)
		return err
	}))
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if b.N >= 1000 && (kept == 0 || kept == b.N) {
		b.Fatalf("the filter kept %d of %d", kept, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
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
