package timestampconverter

import (
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/connectors/transform/transformtest"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

const path = "sources.x.transforms[0].config"

func newT(t testing.TB, yaml string) connector.Transform {
	t.Helper()
	return transformtest.Build(t, yaml, New)
}

func ev(typ events.Type, data string) *events.Event {
	return events.New(typ, "orders", events.RawPayload([]byte(data)))
}

func run(t *testing.T, tr connector.Transform, e *events.Event) (string, error) {
	t.Helper()
	return transformtest.Run(t, tr, e)
}

func TestRegistered(t *testing.T) {
	for _, name := range []string{"TimestampConverter", "timestamp_converter", "timestamp-converter"} {
		if e, ok := catalog.Lookup(catalog.Transform, name); !ok || e.Name != "TimestampConverter" || e.Category != catalog.Transforms {
			t.Errorf("%s: %+v %v", name, e, ok)
		}
	}
}

func TestInputsAndFormats(t *testing.T) {
	// Every input is the same instant (or that day, for dates).
	inputs := []string{
		`"2024-01-15T10:30:00Z"`,
		`"2024-01-15T11:30:00+01:00"`,
		`"2024-01-15T05:30:00-0500"`,
		`"2024-01-15 10:30:00"`,
		`"2024-01-15t10:30:00z"`,
		`"2024-01-15T10:30"`,
		`"2024-01-15 10:30:00+00"`,
		`1705314600`,
		`1705314600000`,
		`1705314600000000`,
		`1705314600000000000`,
		`1705314600.0`,
		`1.7053146e9`,
		`"  2024-01-15T10:30:00Z "`,
	}
	want := map[string]string{
		"iso8601":       `"2024-01-15T10:30:00Z"`,
		"epoch_secs":    `1705314600`,
		"epoch_seconds": `1705314600`,
		"epoch_millis":  `1705314600000`,
		"epoch_micros":  `1705314600000000`,
		"date":          `"2024-01-15"`,
		"date_only":     `"2024-01-15"`,
		"time":          `"10:30:00"`,
		"time_only":     `"10:30:00"`,
	}
	for format, w := range want {
		tr := newT(t, "fields: [ts]\nformat: "+format)
		for _, in := range inputs {
			got, err := run(t, tr, ev(events.Insert, `{"ts":`+in+`,"id":1}`))
			if err != nil || got != `{"id":1,"ts":`+w+`}` {
				t.Errorf("%s of %s: %s %v", format, in, got, err)
			}
		}
	}
}

func TestApply(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		typ          events.Type
		data, want   string
		err          string
	}{
		{"default is iso8601", "fields: [ts]", events.Insert, `{"ts":1705314600123}`, `{"ts":"2024-01-15T10:30:00.123Z"}`, ""},
		{"fraction to the nanosecond", "fields: [ts]", events.Insert, `{"ts":"2024-01-15T10:30:00.123456789+00:00"}`, `{"ts":"2024-01-15T10:30:00.123456789Z"}`, ""},
		{"micros kept", "fields: [ts]", events.Insert, `{"ts":"2024-01-15T10:30:00.1234567891234Z"}`, `{"ts":"2024-01-15T10:30:00.123456789Z"}`, ""},
		{"fractional epoch seconds", "fields: [ts]", events.Insert, `{"ts":1705314600.25}`, `{"ts":"2024-01-15T10:30:00.250Z"}`, ""},
		{"negative epoch floors", "fields: [ts]\nformat: epoch_secs", events.Insert, `{"ts":-1.5}`, `{"ts":-2}`, ""},
		{"millis from 1973 on", "fields: [ts]", events.Insert, `{"ts":100000000000}`, `{"ts":"1973-03-03T09:46:40Z"}`, ""},
		{"seconds below 1e11", "fields: [ts]", events.Insert, `{"ts":99999999999}`, `{"ts":"5138-11-16T09:46:39Z"}`, ""},
		{"date alone is midnight UTC", "fields: [d]\nformat: epoch_millis", events.Insert, `{"d":"2024-01-15"}`, `{"d":1705276800000}`, ""},
		{"update converts both images", "fields: [ts]\nformat: epoch_secs", events.Update, `{"before":{"ts":"2024-01-15T10:30:00Z"},"after":{"ts":"2024-01-15T10:31:00Z"}}`, `{"after":{"ts":1705314660},"before":{"ts":1705314600}}`, ""},
		{"update without before", "fields: [ts]\nformat: date", events.Update, `{"before":null,"after":{"ts":0}}`, `{"after":{"ts":"1970-01-01"},"before":null}`, ""},
		{"delete", "fields: [ts]\nformat: date", events.Delete, `{"ts":"2024-02-29 23:59:59"}`, `{"ts":"2024-02-29"}`, ""},
		{"snapshot read", "fields: [ts]\nformat: time", events.SnapshotRead, `{"ts":"2024-02-29T23:59:59.999+02:00"}`, `{"ts":"21:59:59"}`, ""},
		{"record", "fields: [ts]\nformat: epoch_micros", events.Record, `{"ts":"2024-01-15T10:30:00.000001Z"}`, `{"ts":1705314600000001}`, ""},
		{"nested and several fields", "fields: [meta.created, updated]\nformat: epoch_secs", events.Insert, `{"meta":{"created":"1970-01-01T00:01:00Z","x":1},"updated":"1970-01-01T00:02:00Z"}`, `{"meta":{"created":60,"x":1},"updated":120}`, ""},
		{"missing and null fields are left alone", "fields: [a, b, c.d]", events.Insert, `{"b":null,"c":"str"}`, `{"b":null,"c":"str"}`, ""},
		{"unparsable string", "fields: [ts]", events.Insert, `{"ts":"yesterday"}`, "", `field "ts": "yesterday" is not a timestamp`},
		{"no such date", "fields: [ts]", events.Insert, `{"ts":"2023-02-29"}`, "", "no such date"},
		{"bad offset", "fields: [ts]", events.Insert, `{"ts":"2024-01-15T10:30:00+1"}`, "", "bad UTC offset"},
		{"boolean", "fields: [ts]", events.Insert, `{"ts":true}`, "", "a boolean is not a timestamp"},
		{"object", "fields: [ts]", events.Insert, `{"ts":{"s":1}}`, "", "an object is not a timestamp"},
		{"year out of range", "fields: [ts]", events.Insert, `{"ts":"9999-12-31T23:00:00-02:00"}`, "", "outside 0000-9999"},
		{"epoch out of range", "fields: [ts]", events.Insert, `{"ts":1e40}`, "", "out of range"},
		{"data not an object", "fields: [ts]", events.Record, `[1,2]`, "", "not an object"},
		{"truncate passes", "fields: [ts]", events.Truncate, `null`, `null`, ""},
		{"schema passes", "fields: [ts]", events.Schema, `{"ts":"x"}`, `{"ts":"x"}`, ""},
		{"state passes", "fields: [ts]", events.State, `{"ts":"x"}`, `{"ts":"x"}`, ""},
		{"log passes", "fields: [ts]", events.Log, `{"ts":"x"}`, `{"ts":"x"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := run(t, newT(t, tc.config), ev(tc.typ, tc.data))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %s %v, want %s", got, err, tc.want)
			}
		})
	}
}

// TestFailureLeavesEventUnchanged: the after image converts, the before
// image fails; the event is dead-lettered as it came.
func TestFailureLeavesEventUnchanged(t *testing.T) {
	tr := newT(t, "fields: [ts]")
	e := ev(events.Update, `{"before":{"ts":"bad"},"after":{"ts":0}}`)
	if _, err := run(t, tr, e); err == nil {
		t.Fatal("no error")
	}
	if e.Data.Changed() {
		t.Error("data marked changed")
	}
	if b, _ := e.Data.JSON(); string(b) != `{"before":{"ts":"bad"},"after":{"ts":0}}` {
		t.Errorf("data %s", b)
	}
}

func TestUntouchedEventKeepsItsBytes(t *testing.T) {
	e := ev(events.Insert, `{"x": 1}`)
	if got, err := run(t, newT(t, "fields: [ts]"), e); err != nil || got != `{"x": 1}` || e.Data.Changed() {
		t.Errorf("%s %v", got, err)
	}
}

func TestConfigProblems(t *testing.T) {
	for _, tc := range []struct{ yaml, path, msg string }{
		{"format: date", path + ".fields", "required"},
		{"fields: []", path + ".fields", "at least one"},
		{"fields: [a, 'b.']", path + ".fields[1]", "empty segment"},
		{"fields: [a]\nformat: epoch_milis", path + ".format", `did you mean "epoch_millis"`},
		{"fields: [a]\nformat: unix", path + ".format", "allowed: iso8601"},
		{"fields: [a]\nformats: date", path + ".formats", `did you mean "format"`},
	} {
		_, ps := spec.DecodeString[Config](tc.yaml, path)
		found := false
		for _, p := range ps {
			found = found || p.Path == tc.path && strings.Contains(p.Message, tc.msg)
		}
		if !found {
			t.Errorf("%q: problems %v, want %s: %s", tc.yaml, ps, tc.path, tc.msg)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	tr := newT(t, "fields: [ts, n.ts]\nformat: epoch_millis")
	e := ev(events.Update, `{"before":{"ts":"2024-01-15T10:30:00Z","n":{"ts":"1970-01-01"}},"after":{"ts":"2024-01-15T10:30:00.5Z","n":{"ts":null}}}`)
	if _, err := run(t, tr, e); err != nil {
		t.Fatal(err)
	}
	b, err := events.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	back, err := events.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := back.Data.JSON(); string(d) != `{"after":{"n":{"ts":null},"ts":1705314600500},"before":{"n":{"ts":0},"ts":1705314600000}}` {
		t.Errorf("round trip: %s", d)
	}
}

func BenchmarkTimestampConverter(b *testing.B) {
	const raw = `{"order_id":1,"customer_id":7592,"product":"Ultra Kit","total":41.16,"created_at":"2025-01-01T00:00:00.100Z","updated_at":1735689600100}`
	for _, format := range []string{"iso8601", "epoch_millis"} {
		tr := newT(b, "fields: [created_at, updated_at]\nformat: "+format)
		b.Run(format+"/apply", func(b *testing.B) { transformtest.Bench(b, tr, events.Insert, raw, false) })
		b.Run(format+"/apply+marshal", func(b *testing.B) { transformtest.Bench(b, tr, events.Insert, raw, true) })
	}
}
