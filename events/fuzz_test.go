package events

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func fuzzSeeds() [][]byte {
	var seeds [][]byte
	for _, g := range rivvenGoldens {
		seeds = append(seeds, []byte(g.json))
	}
	for _, s := range []string{pgCreate, pgUpdate, pgDelete, pgRead, pgTruncate, mysqlUpdate, mysqlGTIDCreate, mysqlSnapshot} {
		seeds = append(seeds, []byte(s), []byte(wrap(s)))
	}
	for _, e := range cloudEventsSamples() {
		b, _ := CloudEvents.Append(nil, e)
		seeds = append(seeds, b)
	}
	for _, e := range debeziumRoundTripEvents() {
		b, _ := Debezium.Append(nil, e)
		seeds = append(seeds, b)
	}
	seeds = append(seeds,
		[]byte(`{"specversion":"1.0","type":"com.example.thing","source":"/x","id":"1","data_base64":"eyJhIjoxfQ=="}`),
		[]byte(`{"event_type":"insert","stream":"s","timestamp":"2024-01-15T10:30:00+01:00","metadata":{"sequence":null,"x":1}}`),
		[]byte(`{"event\u005ftype":"insert","stream":"a\ud800","timestamp":"2024-01-15T10:30:00Z"}`),
		[]byte(`{"specversion":"1.0","type":"x","partitionkey":"a\u0001b","data_base64":"aGVsbG8="}`),
		[]byte(`{"event_type":"insert","stream":"s","timestamp":"9999-12-31T23:59:59-01:00"}`),
		[]byte(`{"op":"c","after":{"a":[1,{"b":"\ud83d\ude00"}]},"ts_ms":253402300799999}`),
		[]byte(`{"event_type":"insert","stream":"s","timestamp":"2024-01-15T10:30:00Z","source":{"table":"<&>","commit_ts":"2024-01-15T10:30:00.5+02:00","snapshot":true}}`),
		[]byte(`{}`), []byte(``), []byte(`[`),
	)
	return seeds
}

// FuzzDecodeAny: decoding never panics, and whatever decodes re-encodes as
// Rivven JSON that decodes to an equal event (equal = same Rivven bytes).
func FuzzDecodeAny(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		e, err := DecodeAny(b)
		if !bytes.Equal(in, b) {
			t.Fatal("DecodeAny changed its input")
		}
		if err == nil && !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		if err != nil {
			if e != nil {
				t.Fatal("an event came back with an error")
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		m1, err := Marshal(e)
		if err != nil {
			t.Fatalf("decoded event does not encode: %v\ninput %q", err, b)
		}
		if !json.Valid(m1) {
			t.Fatalf("encoded to invalid JSON %q\ninput %q", m1, b)
		}
		e2, err := Rivven.Decode(m1)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v\nencoded %q\ninput %q", err, m1, b)
		}
		m2, err := Marshal(e2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m1, m2) {
			t.Fatalf("not stable\nfirst  %q\nsecond %q\ninput  %q", m1, m2, b)
		}
		// Clones encode the same.
		if m3, err := Marshal(e.Clone()); err != nil || !bytes.Equal(m1, m3) {
			t.Fatalf("clone differs: %v\n%q\n%q", err, m1, m3)
		}
		// Reading rows never panics.
		_, _ = e.After()
		_, _ = e.Before()
		// Value agrees with encoding/json (UseNumber).
		raw, _ := e.Data.JSON()
		v, err := e.Data.Value()
		var std any
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		stdErr := d.Decode(&std)
		switch {
		case err == nil && stdErr != nil:
			t.Fatalf("Value accepted %q, encoding/json: %v", raw, stdErr)
		case err == nil && !reflect.DeepEqual(v, std):
			t.Fatalf("Value(%q)\n= %#v\nencoding/json: %#v", raw, v, std)
		case err != nil && stdErr == nil && !strings.Contains(err.Error(), "too deep"):
			t.Fatalf("Value(%q): %v; encoding/json accepts it", raw, err)
		}

		// The other encoders write valid JSON; CloudEvents round trips.
		if out, err := CloudEvents.Append(nil, e); err != nil {
			t.Fatalf("CloudEvents.Append: %v", err)
		} else if !json.Valid(out) {
			t.Fatalf("CloudEvents wrote invalid JSON %q", out)
		} else if d, err := CloudEvents.Decode(out); err != nil {
			t.Fatalf("CloudEvents round trip: %v\n%q", err, out)
		} else if utf8.Valid(e.Key) {
			if m4, _ := Marshal(d); !bytes.Equal(m1, m4) {
				t.Fatalf("CloudEvents round trip differs\nwant %q\ngot  %q", m1, m4)
			}
		}
		if out, err := Debezium.Append(nil, e); err == nil {
			if !json.Valid(out) {
				t.Fatalf("Debezium wrote invalid JSON %q", out)
			}
			_, _ = Debezium.Decode(out)
		}
	})
}
