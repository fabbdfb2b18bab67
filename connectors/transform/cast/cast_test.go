package cast

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
	for _, name := range []string{"Cast", "cast", "CAST"} {
		if e, ok := catalog.Lookup(catalog.Transform, name); !ok || e.Name != "Cast" || e.Category != catalog.Transforms {
			t.Errorf("%s: %+v %v", name, e, ok)
		}
	}
}

// TestValues casts single values: {"v": in} with specs {v: type}.
func TestValues(t *testing.T) {
	for _, tc := range []struct {
		typ, in, want, err string
	}{
		{"string", `"a"`, `"a"`, ""},
		{"string", `12345678901234567890.000`, `"12345678901234567890.000"`, ""},
		{"string", `true`, `"true"`, ""},
		{"string", `{"b":[1,"<x>"],"a":null}`, `"{\"a\":null,\"b\":[1,\"<x>\"]}"`, ""},
		{"string", `[]`, `"[]"`, ""},
		{"int32", `42`, `42`, ""},
		{"int32", `"  -17 "`, `-17`, ""},
		{"int32", `"+007"`, `7`, ""},
		{"int32", `2147483647`, `2147483647`, ""},
		{"int32", `2147483648`, ``, "out of range for int32"},
		{"int32", `-2147483649`, ``, "out of range for int32"},
		{"int32", `3e9`, ``, "out of range for int32"},
		{"int32", `1.9`, `1`, ""},
		{"int32", `-1.9`, `-1`, ""},
		{"int32", `1e3`, `1000`, ""},
		{"int32", `true`, `1`, ""},
		{"int32", `false`, `0`, ""},
		{"int32", `"12abc"`, ``, `"12abc" is not a number`},
		{"int32", `""`, ``, "is not a number"},
		{"int32", `"0x1F"`, ``, "is not a number"},
		{"int32", `{}`, ``, "cannot cast an object"},
		{"int32", `[1]`, ``, "cannot cast an array"},
		{"int64", `9223372036854775807`, `9223372036854775807`, ""},
		{"int64", `9223372036854775808`, ``, "out of range for int64"},
		{"int64", `"-9223372036854775808"`, `-9223372036854775808`, ""},
		{"int64", `123456789012345678.9`, `123456789012345678`, ""},
		{"integer", `5`, `5`, ""},
		{"long", `5.5`, `5`, ""},
		{"float64", `1`, `1.0`, ""},
		{"float64", `"41.16"`, `41.16`, ""},
		{"float64", `0.1`, `0.1`, ""},
		{"float64", `-0`, `-0.0`, ""},
		{"float64", `1e300`, `1e+300`, ""},
		{"float64", `1e400`, ``, "out of range for float64"},
		{"float64", `0.0000001`, `1e-07`, ""},
		{"float64", `123456789012345678901234567890`, `1.2345678901234568e+29`, ""},
		{"float64", `true`, `1.0`, ""},
		{"float64", `"NaN"`, ``, "is not a number"},
		{"float64", `"Inf"`, ``, "is not a number"},
		{"float64", `"abc"`, ``, "is not a number"},
		{"float", `2`, `2.0`, ""},
		{"double", `2.5`, `2.5`, ""},
		{"float32", `0.1`, `0.1`, ""},
		{"float32", `16777217`, `16777216.0`, ""},
		{"float32", `1e39`, ``, "out of range for float32"},
		{"boolean", `true`, `true`, ""},
		{"boolean", `0`, `false`, ""},
		{"boolean", `0.000`, `false`, ""},
		{"boolean", `0e10`, `false`, ""},
		{"boolean", `-0.5`, `true`, ""},
		{"boolean", `"Yes"`, `true`, ""},
		{"boolean", `" off "`, `false`, ""},
		{"boolean", `"1"`, `true`, ""},
		{"boolean", `"maybe"`, ``, `"maybe" is not a boolean`},
		{"boolean", `""`, ``, "is not a boolean"},
		{"boolean", `[]`, ``, "cannot cast an array"},
		{"bool", `"F"`, `false`, ""},
		{"json", `"{\"a\":1.50,\"b\":[true,null]}"`, `{"a":1.50,"b":[true,null]}`, ""},
		{"json", `"123"`, `123`, ""},
		{"json", `"\"s\""`, `"s"`, ""},
		{"json", `"{bad"`, ``, "is not valid JSON"},
		{"json", `""`, ``, "is not valid JSON"},
		{"json", `"1 2"`, ``, "is not valid JSON"},
		{"json", `{"a":1}`, `{"a":1}`, ""},
		{"json", `7`, `7`, ""},
	} {
		got, err := run(t, newT(t, "specs: {v: "+tc.typ+"}"), ev(events.Insert, `{"v":`+tc.in+`}`))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), `field "v" to `+tc.typ) {
				t.Errorf("%s(%s): %s %v, want error %q", tc.typ, tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != `{"v":`+tc.want+`}` {
			t.Errorf("%s(%s) = %s %v, want %s", tc.typ, tc.in, got, err, tc.want)
		}
	}
}

func TestApply(t *testing.T) {
	const specs = "specs: {id: int64, amount: float64, active: boolean, meta.n: string, doc: json}"
	for _, tc := range []struct {
		name string
		typ  events.Type
		data string
		want string
		err  string
	}{
		{"insert", events.Insert, `{"id":"7","amount":"41.16","active":"yes","meta":{"n":5},"doc":"[1]"}`, `{"active":true,"amount":41.16,"doc":[1],"id":7,"meta":{"n":"5"}}`, ""},
		{"update casts both images", events.Update, `{"before":{"id":"1","amount":1},"after":{"id":"1","amount":2}}`, `{"after":{"amount":2.0,"id":1},"before":{"amount":1.0,"id":1}}`, ""},
		{"update without before", events.Update, `{"before":null,"after":{"id":"1"}}`, `{"after":{"id":1},"before":null}`, ""},
		{"delete", events.Delete, `{"id":"9"}`, `{"id":9}`, ""},
		{"snapshot read", events.SnapshotRead, `{"id":9.0}`, `{"id":9}`, ""},
		{"record", events.Record, `{"active":0}`, `{"active":false}`, ""},
		{"missing and null left alone", events.Insert, `{"id":null,"meta":"flat"}`, `{"id":null,"meta":"flat"}`, ""},
		{"overflow dead-letters", events.Insert, `{"id":"99999999999999999999"}`, "", `field "id" to int64: 99999999999999999999 is out of range for int64`},
		{"data not an object", events.Record, `"x"`, "", "not an object"},
		{"truncate passes", events.Truncate, `null`, `null`, ""},
		{"schema passes", events.Schema, `{"id":"x"}`, `{"id":"x"}`, ""},
		{"state passes", events.State, `{"id":"x"}`, `{"id":"x"}`, ""},
		{"log passes", events.Log, `{"id":"x"}`, `{"id":"x"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := run(t, newT(t, specs), ev(tc.typ, tc.data))
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

func TestFailureLeavesEventUnchanged(t *testing.T) {
	e := ev(events.Update, `{"before":{"id":"x"},"after":{"id":"1"}}`)
	if _, err := run(t, newT(t, "specs: {id: int32}"), e); err == nil {
		t.Fatal("no error")
	}
	if b, _ := e.Data.JSON(); e.Data.Changed() || string(b) != `{"before":{"id":"x"},"after":{"id":"1"}}` {
		t.Errorf("data %s", b)
	}
}

func TestConfigProblems(t *testing.T) {
	for _, tc := range []struct{ yaml, path, msg string }{
		{"{}", path + ".specs", "required"},
		{"specs: {}", path + ".specs", "at least one"},
		{"specs: [a]", path + ".specs", "expected a mapping"},
		{"specs: {amount: flaot64}", path + ".specs.amount", `did you mean "float64"`},
		{"specs: {amount: decimal}", path + ".specs.amount", "allowed: string, int32"},
		{"specs: {amount: [int32]}", path + ".specs.amount", "expected a string"},
		{"specs: {'a..b': int32}", path + ".specs.a..b", "empty segment"},
		{"spec: {a: int32}", path + ".spec", `did you mean "specs"`},
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
	e := ev(events.Update, `{"before":{"n":"1","f":"2","j":"{\"k\":[1]}"},"after":{"n":"3","f":"4.5","j":"null","o":{"x":1}}}`)
	if _, err := run(t, newT(t, "specs: {n: int32, f: float32, j: json, o: string}"), e); err != nil {
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
	if d, _ := back.Data.JSON(); string(d) != `{"after":{"f":4.5,"j":null,"n":3,"o":"{\"x\":1}"},"before":{"f":2.0,"j":{"k":[1]},"n":1}}` {
		t.Errorf("round trip: %s", d)
	}
}

func BenchmarkCast(b *testing.B) {
	const raw = `{"order_id":"1","customer_id":7592,"product":"Ultra Kit","quantity":"3","total":"41.16","status":"cancelled"}`
	tr := newT(b, "specs: {order_id: int64, quantity: int32, total: float64, customer_id: string}")
	b.Run("apply", func(b *testing.B) { transformtest.Bench(b, tr, events.Insert, raw, false) })
	b.Run("apply+marshal", func(b *testing.B) { transformtest.Bench(b, tr, events.Insert, raw, true) })
}
