package events

import (
	"bytes"
	"encoding/json"
	"testing"
)

// benchUpdate is a realistic CDC update as Rivven writes it (~350 bytes).
var benchUpdate = []byte(`{"event_type":"update","stream":"orders","namespace":"public","timestamp":"2024-01-15T10:30:00.123456Z","data":{"before":{"id":1042,"customer_id":77,"status":"pending","total":"129.99","currency":"EUR"},"after":{"id":1042,"customer_id":77,"status":"shipped","total":"129.99","currency":"EUR"}},"metadata":{"position":"0/16B3748","transaction_id":"771","sequence":12}}`)

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func benchEvent(b *testing.B) *Event {
	e, err := Rivven.Decode(benchUpdate)
	if err != nil {
		b.Fatal(err)
	}
	return e
}

func TestBenchEventIsRealistic(t *testing.T) {
	if n := len(benchUpdate); n < 300 || n > 400 {
		t.Errorf("benchmark event is %d bytes", n)
	}
	e := mustDecode(t, Rivven, benchUpdate)
	if out := mustMarshal(t, e); !bytes.Equal(out, benchUpdate) {
		t.Errorf("benchmark event does not round trip:\n%s", out)
	}
}

func BenchmarkRivvenDecode(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchUpdate)))
	for b.Loop() {
		if _, err := Rivven.Decode(benchUpdate); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

func BenchmarkRivvenEncode(b *testing.B) {
	e := benchEvent(b)
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchUpdate)))
	for b.Loop() {
		var err error
		if buf, err = Rivven.Append(buf[:0], e); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// Decode and encode again without looking at the data: what a pipeline
// that only routes or filters on metadata does.
func BenchmarkRivvenRoundTripUntouched(b *testing.B) {
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchUpdate)))
	for b.Loop() {
		e, err := Rivven.Decode(benchUpdate)
		if err != nil {
			b.Fatal(err)
		}
		if buf, err = Rivven.Append(buf[:0], e); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// Decode and read the row (Value): what a transform that looks at columns pays.
func BenchmarkRivvenDecodeAndReadRow(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchUpdate)))
	for b.Loop() {
		e, err := Rivven.Decode(benchUpdate)
		if err != nil {
			b.Fatal(err)
		}
		row, err := e.Row()
		if err != nil || row["status"] != "shipped" {
			b.Fatal(row, err)
		}
	}
	reportRate(b)
}

// The baseline: the same bytes into a map with encoding/json.
func BenchmarkStdlibJSONDecodeMap(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchUpdate)))
	for b.Loop() {
		var m map[string]any
		if err := json.Unmarshal(benchUpdate, &m); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// The baseline with json.Number, which exact numbers need (what Value does).
func BenchmarkStdlibJSONDecodeMapUseNumber(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchUpdate)))
	for b.Loop() {
		d := json.NewDecoder(bytes.NewReader(benchUpdate))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

func BenchmarkDebeziumEncode(b *testing.B) {
	e := benchEvent(b)
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	out, _ := Debezium.Append(nil, e)
	b.SetBytes(int64(len(out)))
	for b.Loop() {
		var err error
		if buf, err = Debezium.Append(buf[:0], e); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

func BenchmarkDebeziumDecode(b *testing.B) {
	in, err := Debezium.Append(nil, benchEvent(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := Debezium.Decode(in); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

func BenchmarkCloudEventsEncode(b *testing.B) {
	e := benchEvent(b)
	buf := make([]byte, 0, 1024)
	out, _ := CloudEvents.Append(nil, e)
	b.ReportAllocs()
	b.SetBytes(int64(len(out)))
	for b.Loop() {
		var err error
		if buf, err = CloudEvents.Append(buf[:0], e); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

func BenchmarkCloudEventsDecode(b *testing.B) {
	in, err := CloudEvents.Append(nil, benchEvent(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := CloudEvents.Decode(in); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

func BenchmarkDecodeAny(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchUpdate)))
	for b.Loop() {
		if _, err := DecodeAny(benchUpdate); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}
