package computefield

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/connectors/transform/row"
	"github.com/rivven/rivven-connect/connectors/transform/transformtest"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

const path = "sources.x.transforms[0].config"

var fixed = time.Date(2025, 1, 2, 3, 4, 5, 600_000_000, time.UTC)

// newT builds the transform with the clock fixed at 2025-01-02T03:04:05.600Z.
func newT(t testing.TB, yaml string) connector.Transform {
	t.Helper()
	cfg, ps := spec.DecodeString[Config](yaml, path)
	if len(ps) > 0 {
		t.Fatal(spec.Problems(ps))
	}
	tr, err := build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr.now = func() time.Time { return fixed }
	return row.Each(tr.apply)
}

func ev(typ events.Type, data string) *events.Event {
	return events.New(typ, "orders", events.RawPayload([]byte(data)))
}

func run(t *testing.T, tr connector.Transform, e *events.Event) (string, error) {
	t.Helper()
	return transformtest.Run(t, tr, e)
}

func TestRegistered(t *testing.T) {
	for _, name := range []string{"ComputeField", "compute_field", "compute-field"} {
		if e, ok := catalog.Lookup(catalog.Transform, name); !ok || e.Name != "ComputeField" || e.Category != catalog.Transforms {
			t.Errorf("%s: %+v %v", name, e, ok)
		}
	}
	if _, err := New(context.Background(), &Config{Computations: []Computation{{Target: "t", Type: "timestamp"}}}); err != nil {
		t.Error(err)
	}
}

const person = `{"id":42,"first":"Ada","last":"Lovelace","nick":null,"email":"alice@example.com","vip":true,"tags":["a"],"addr":{"city":"London"}}`

func TestComputations(t *testing.T) {
	for _, tc := range []struct {
		name, comps string // YAML list items of computations
		data        string
		want        string // JSON of the target fields t and u
		err         string
	}{
		{"concat with separator", "{target: t, type: concat, fields: [first, last], separator: ' '}", person, `"Ada Lovelace"`, ""},
		{"concat of any JSON", "{target: t, type: concat, fields: [id, vip, tags, addr], separator: '|'}", person, `"42|true|[\"a\"]|{\"city\":\"London\"}"`, ""},
		{"concat skips missing and null", "{target: t, type: concat, fields: [first, nick, missing, last], separator: '-'}", person, `"Ada-Lovelace"`, ""},
		{"concat nested", "{target: t, type: concat, fields: [addr.city, id]}", person, `"London42"`, ""},
		{"concat of nothing", "{target: t, type: concat, fields: [missing]}", person, `""`, ""},
		{"concat parts (reference)", "{target: t, type: concat, parts: [$first, last]}", person, `"AdaLovelace"`, ""},
		{"hash sha256 default", "{target: t, type: hash, fields: [email]}", person, `"b595101af3afe93343acb7181bc1593573485685c06d714e9a9398b0207f8952"`, ""},
		{"hash md5", "{target: t, type: hash, fields: [email], algorithm: md5}", person, `"b6e5a21edad3359287c27dd390d256b2"`, ""},
		{"hash several, missing is null", "{target: t, type: hash, fields: [id, x, nick]}", `{"id":1,"x":"a"}`, `"92e9b44a49821b46c367505f52146efecccf331f1c98c965a16d9a33610806dd"`, ""},
		{"upper", "{target: t, type: upper, source: first}", person, `"ADA"`, ""},
		{"uppercase with fields", "{target: t, type: uppercase, fields: [addr.city]}", person, `"LONDON"`, ""},
		{"lower in place", "{target: email, type: lower, fields: [email]}\n  - {target: t, type: lowercase, source: first}", `{"email":"A@B.C","first":"ÄDA"}`, `"äda"`, ""},
		{"upper of null", "{target: t, type: upper, source: nick}", person, `null`, ""},
		{"upper of a number", "{target: t, type: upper, source: id}", person, "", `upper into "t": field "id" is a number, not a string`},
		{"coalesce", "{target: t, type: coalesce, fields: [nick, missing, first, last]}", person, `"Ada"`, ""},
		{"coalesce keeps the type", "{target: t, type: coalesce, fields: [nick, addr]}", person, `{"city":"London"}`, ""},
		{"coalesce of nothing", "{target: t, type: coalesce, fields: [nick, missing]}", person, `null`, ""},
		{"uuid v5 of fields", "{target: t, type: uuid, fields: [email]}", person, `"22244bc7-9177-59c3-9689-a6f40acd163a"`, ""},
		{"uuid v5 namespace", "{target: t, type: uuid, fields: [id], namespace: 6ba7b810-9dad-11d1-80b4-00c04fd430c8}", person, `"7c411b5e-9d3f-50b5-9c28-62096e41c4ed"`, ""},
		{"timestamp", "{target: t, type: timestamp}", person, `"2025-01-02T03:04:05.600Z"`, ""},
		{"current_timestamp", "{target: t, type: current_timestamp}", person, `"2025-01-02T03:04:05.600Z"`, ""},
		{"later computations see earlier ones", "{target: full, type: concat, fields: [first, last], separator: ' '}\n  - {target: t, type: upper, source: full}", person, `"ADA LOVELACE"`, ""},
		{"nested target is created", "{target: meta.t, type: timestamp}\n  - {target: t, type: concat, fields: [meta.t]}", `{}`, `"2025-01-02T03:04:05.600Z"`, ""},
		{"target inside a non-object", "{target: id.t, type: timestamp}", person, "", `timestamp into "id.t": cannot set id.t: id is`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := ev(events.Insert, tc.data)
			got, err := run(t, newT(t, "computations:\n  - "+tc.comps), e)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				if b, _ := e.Data.JSON(); e.Data.Changed() || string(b) != tc.data {
					t.Errorf("failed event changed: %s", b)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			v, _ := e.Data.Value()
			p := events.ValuePayload(v.(map[string]any)["t"])
			if b, _ := p.JSON(); string(b) != tc.want {
				t.Errorf("t = %s, want %s (row %s)", b, tc.want, got)
			}
		})
	}
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestRandomUUID(t *testing.T) {
	tr := newT(t, "computations: [{target: id, type: uuid}, {target: id2, type: uuid}]")
	seen := map[any]bool{}
	for range 100 {
		e := ev(events.Update, `{"before":{"x":1},"after":{"x":2}}`)
		if _, err := run(t, tr, e); err != nil {
			t.Fatal(err)
		}
		v, _ := e.Data.Value()
		after, before := v.(map[string]any)["after"].(map[string]any), v.(map[string]any)["before"].(map[string]any)
		if !uuidV4.MatchString(after["id"].(string)) {
			t.Fatalf("not a v4 UUID: %v", after["id"])
		}
		if after["id"] != before["id"] || after["id2"] != before["id2"] {
			t.Errorf("the images of one event got different UUIDs: %v %v", after, before)
		}
		if after["id"] == after["id2"] || seen[after["id"]] {
			t.Errorf("UUID repeated: %v", after)
		}
		seen[after["id"]] = true
	}
}

func TestEvents(t *testing.T) {
	const cfg = "computations: [{target: name, type: concat, fields: [first, last], separator: ' '}, {target: at, type: timestamp}]"
	for _, tc := range []struct {
		name       string
		typ        events.Type
		data, want string
		err        string
	}{
		{"insert", events.Insert, `{"first":"A","last":"B"}`, `{"at":"2025-01-02T03:04:05.600Z","first":"A","last":"B","name":"A B"}`, ""},
		{"record", events.Record, `{"first":"A"}`, `{"at":"2025-01-02T03:04:05.600Z","first":"A","name":"A"}`, ""},
		{"snapshot read", events.SnapshotRead, `{"last":"B"}`, `{"at":"2025-01-02T03:04:05.600Z","last":"B","name":"B"}`, ""},
		{"update computes both images", events.Update, `{"before":{"first":"A","last":"B"},"after":{"first":"A","last":"C"}}`, `{"after":{"at":"2025-01-02T03:04:05.600Z","first":"A","last":"C","name":"A C"},"before":{"at":"2025-01-02T03:04:05.600Z","first":"A","last":"B","name":"A B"}}`, ""},
		{"update without before", events.Update, `{"before":null,"after":{"first":"A"}}`, `{"after":{"at":"2025-01-02T03:04:05.600Z","first":"A","name":"A"},"before":null}`, ""},
		{"delete", events.Delete, `{"first":"A","last":"B"}`, `{"at":"2025-01-02T03:04:05.600Z","first":"A","last":"B","name":"A B"}`, ""},
		{"data not an object", events.Record, `1`, "", "not an object"},
		{"null data passes", events.Delete, `null`, `null`, ""},
		{"truncate passes", events.Truncate, `null`, `null`, ""},
		{"schema passes", events.Schema, `{"first":"A"}`, `{"first":"A"}`, ""},
		{"state passes", events.State, `{"first":"A"}`, `{"first":"A"}`, ""},
		{"log passes", events.Log, `{"first":"A"}`, `{"first":"A"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := run(t, newT(t, cfg), ev(tc.typ, tc.data))
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

// TestFailureRollsBack: the after image is computed, the before image
// fails; every change is taken back, nested ones included.
func TestFailureRollsBack(t *testing.T) {
	tr := newT(t, "computations: [{target: n, type: upper, source: s}, {target: meta.t, type: timestamp}, {target: meta.deep.u, type: uuid}]")
	const data = `{"before":{"s":5,"meta":{"k":1}},"after":{"s":"x","meta":{"k":2}}}`
	e := ev(events.Update, data)
	if _, err := run(t, tr, e); err == nil || !strings.Contains(err.Error(), "not a string") {
		t.Fatal(err)
	}
	if b, _ := e.Data.JSON(); e.Data.Changed() || string(b) != data {
		t.Errorf("data after failure: %s", b)
	}
	v, _ := e.Data.Value()
	if after := v.(map[string]any)["after"].(map[string]any); len(after) != 2 || len(after["meta"].(map[string]any)) != 1 {
		t.Errorf("after image not rolled back: %v", after)
	}
}

func TestConfigProblems(t *testing.T) {
	c := path + ".computations[0]"
	for _, tc := range []struct{ yaml, path, msg string }{
		{"{}", path + ".computations", "required"},
		{"computations: []", path + ".computations", "at least one"},
		{"computations: [{type: uuid}]", c + ".target", "required"},
		{"computations: [{target: t}]", c + ".type", "required"},
		{"computations: [{target: t, type: sum, fields: [a]}]", c + ".type", "allowed: concat, hash"},
		{"computations: [{target: t, type: concat}]", c + ".fields", "at least one field"},
		{"computations: [{target: t, type: concat, fields: [a], parts: [b]}]", c + ".parts", "not both"},
		{"computations: [{target: t, type: hash}]", c + ".fields", "hash needs at least one field"},
		{"computations: [{target: t, type: hash, fields: [a], algorithm: sha3}]", c + ".algorithm", "allowed: sha256"},
		{"computations: [{target: t, type: coalesce}]", c + ".fields", "coalesce needs"},
		{"computations: [{target: t, type: upper}]", c + ".fields", "exactly one field"},
		{"computations: [{target: t, type: lower, fields: [a, b]}]", c + ".fields", "exactly one field"},
		{"computations: [{target: t, type: upper, source: a, fields: [b]}]", c + ".source", "not both"},
		{"computations: [{target: t, type: uuid, namespace: nope, fields: [a]}]", c + ".namespace", "not a UUID"},
		{"computations: [{target: t, type: uuid, namespace: 6ba7b810-9dad-11d1-80b4-00c04fd430c8}]", c + ".namespace", "needs fields"},
		{"computations: [{target: t, type: timestamp, fields: [a]}]", c + ".fields", "does not apply to type timestamp"},
		{"computations: [{target: t, type: hash, fields: [a], separator: ','}]", c + ".separator", "does not apply"},
		{"computations: [{target: t, type: concat, fields: [a], algorithm: md5}]", c + ".algorithm", "does not apply"},
		{"computations: [{target: t, type: concat, fields: [a], source: b}]", c + ".source", "does not apply"},
		{"computations: [{target: t, type: hash, fields: [a], parts: [b]}]", c + ".parts", "does not apply"},
		{"computations: [{target: t, type: timestamp, namespace: x}]", c + ".namespace", "does not apply"},
		{"computations: [{target: 'a..b', type: timestamp}]", c + ".target", "empty segment"},
		{"computations: [{target: t, type: hash, fields: [a, '']}]", c + ".fields[1]", "empty field path"},
		{"computations: [{target: t, type: concat, parts: ['$']}]", c + ".parts[0]", "empty field path"},
		{"computations: [{target: t, type: upper, source: '.x'}]", c + ".source", "empty segment"},
		{"computations: [{target: t, type: timestamp}, {target: u, type: hash, field: [a]}]", path + ".computations[1].field", `did you mean "fields"`},
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
	e := ev(events.Update, `{"before":{"id":1,"email":"A@X.ORG"},"after":{"id":1,"email":"B@X.ORG"}}`)
	if _, err := run(t, newT(t, "computations: [{target: email, type: lower, source: email}, {target: meta.key, type: hash, fields: [id]}]"), e); err != nil {
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
	const h = "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b" // sha256("1")
	if d, _ := back.Data.JSON(); string(d) != `{"after":{"email":"b@x.org","id":1,"meta":{"key":"`+h+`"}},"before":{"email":"a@x.org","id":1,"meta":{"key":"`+h+`"}}}` {
		t.Errorf("round trip: %s", d)
	}
}

func BenchmarkComputeField(b *testing.B) {
	const raw = `{"order_id":1,"customer_id":7592,"first":"Ada","last":"Lovelace","email":"ada@example.com","total":41.16,"status":"cancelled"}`
	for _, c := range []struct{ name, config string }{
		{"concat", "computations: [{target: name, type: concat, fields: [first, last], separator: ' '}]"},
		{"hash", "computations: [{target: email_hash, type: hash, fields: [email]}]"},
		{"upper", "computations: [{target: status, type: upper, source: status}]"},
		{"uuid", "computations: [{target: id, type: uuid}]"},
		{"timestamp", "computations: [{target: at, type: timestamp}]"},
		{"all", "computations: [{target: name, type: concat, fields: [first, last], separator: ' '}, {target: email_hash, type: hash, fields: [email]}, {target: status, type: upper, source: status}, {target: id, type: uuid}, {target: at, type: timestamp}]"},
	} {
		tr, _ := New(context.Background(), mustDecode(b, c.config))
		b.Run(c.name+"/apply", func(b *testing.B) { transformtest.Bench(b, tr, events.Insert, raw, false) })
		b.Run(c.name+"/apply+marshal", func(b *testing.B) { transformtest.Bench(b, tr, events.Insert, raw, true) })
	}
}

func mustDecode(b *testing.B, yaml string) *Config {
	cfg, ps := spec.DecodeString[Config](yaml, path)
	if len(ps) > 0 {
		b.Fatal(spec.Problems(ps))
	}
	return cfg
}
