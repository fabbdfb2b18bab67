package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseTypeAndOp(t *testing.T) {
	ops := map[Type]string{Record: "c", Insert: "c", Update: "u", Delete: "d", SnapshotRead: "r", Truncate: "t", Schema: "s", State: "", Log: ""}
	data := map[Type]bool{Record: true, Insert: true, Update: true, Delete: true, SnapshotRead: true}
	if len(Types) != len(ops) {
		t.Fatalf("Types has %d entries", len(Types))
	}
	for _, typ := range Types {
		got, err := ParseType(string(typ))
		if err != nil || got != typ {
			t.Errorf("ParseType(%s) = %s, %v", typ, got, err)
		}
		if typ.Op() != ops[typ] {
			t.Errorf("%s.Op() = %q", typ, typ.Op())
		}
		if typ.IsData() != data[typ] {
			t.Errorf("%s.IsData() = %v", typ, typ.IsData())
		}
		// The token fast path agrees.
		if got, err := parseTypeToken([]byte(`"` + string(typ) + `"`)); err != nil || got != typ {
			t.Errorf("parseTypeToken(%s) = %s, %v", typ, got, err)
		}
	}
	for _, bad := range []string{"", "Insert", "snapshot_read", "upsert", " insert"} {
		if _, err := ParseType(bad); err == nil || !strings.Contains(err.Error(), "allowed: record, insert") {
			t.Errorf("ParseType(%q): %v", bad, err)
		}
	}
	if typ, err := parseTypeToken([]byte(`"snapshot\u002dread"`)); err != nil || typ != SnapshotRead {
		t.Errorf("escaped type: %s %v", typ, err)
	}
	if Type("x").Op() != "" || Type("x").IsData() {
		t.Error("unknown type")
	}
}

func TestNewAndNamespace(t *testing.T) {
	before := time.Now()
	e := New(Insert, "s", RawPayload([]byte(`{"a":1}`)))
	if e.Type != Insert || e.Stream != "s" || e.Timestamp.Before(before.Add(-time.Second)) || e.Timestamp.Location() != time.UTC {
		t.Errorf("%+v", e)
	}
	if e.NamespaceOr("d") != "d" {
		t.Error("NamespaceOr without namespace")
	}
	ns := ""
	e.Namespace = &ns
	if e.NamespaceOr("d") != "" {
		t.Error("an empty namespace is still a namespace")
	}
}

func TestMetadataGetSet(t *testing.T) {
	var m Metadata
	if _, ok := m.Get("a"); ok {
		t.Error("Get on empty metadata")
	}
	m.Set("a", json.RawMessage(`1`))
	m.Set("b", json.RawMessage(`"x"`))
	m.Set("a", json.RawMessage(`2`))
	if v, ok := m.Get("a"); !ok || string(v) != "2" {
		t.Errorf("a = %s %v", v, ok)
	}
	if len(m.Extra) != 2 || m.Extra[0].Key != "a" || m.Extra[1].Key != "b" {
		t.Errorf("extra %+v", m.Extra)
	}
}

func TestCloneIsIndependent(t *testing.T) {
	e := mustDecode(t, Rivven, []byte(rivvenGoldens[len(rivvenGoldens)-1].json)) // key and source
	e.Metadata.SchemaID = ptr(uint32(7))
	e.Source.CommitTS = ptr(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	orig := mustMarshal(t, e)

	c := e.Clone()
	if !bytes.Equal(mustMarshal(t, c), orig) {
		t.Fatal("clone encodes differently")
	}
	*c.Namespace = "changed"
	*c.Metadata.Sequence = 99
	*c.Metadata.SchemaID = 99
	c.Metadata.Set("op_ts", json.RawMessage(`"y"`))
	c.Metadata.Set("new", json.RawMessage(`1`))
	c.Source.Table = "changed"
	*c.Source.CommitTS = c.Source.CommitTS.Add(time.Hour)
	v, err := c.Data.Mutable()
	if err != nil {
		t.Fatal(err)
	}
	v.(map[string]any)["id"] = json.Number("8")
	c.Stream = "changed"
	if got := mustMarshal(t, e); !bytes.Equal(got, orig) {
		t.Errorf("changing the clone changed the original\nwas %s\nnow %s", orig, got)
	}

	// Cloning a changed payload keeps the change and detaches it.
	v2, _ := e.Data.Mutable()
	v2.(map[string]any)["id"] = json.Number("9")
	c2 := e.Clone()
	v2.(map[string]any)["id"] = json.Number("10")
	row, _ := c2.Row()
	if row["id"] != json.Number("9") {
		t.Errorf("clone of a changed payload: %v", row["id"])
	}

	// Events built with ValuePayload clone too.
	e3 := &Event{Type: Insert, Data: ValuePayload(map[string]any{"a": "b"})}
	c3 := e3.Clone()
	if b, _ := c3.Data.JSON(); string(b) != `{"a":"b"}` {
		t.Errorf("clone of a value payload: %s", b)
	}
	if c3.Data.Changed() {
		t.Error("the clone's payload is raw again and unchanged")
	}
	// An unencodable value stays shared but does not break Clone.
	e4 := &Event{Type: Insert, Data: ValuePayload(func() {})}
	if c4 := e4.Clone(); !c4.Data.Changed() {
		t.Error("unencodable payload lost")
	}
}

func TestDeadLetterMarshal(t *testing.T) {
	p, o := int32(3), int64(42)
	d := &DeadLetter{OriginalTopic: "orders", ConnectorName: "pg", PayloadB64: []byte("{bad"), Error: "rivven event: <x>",
		RetryCount: 2, Timestamp: time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC), Stage: "decode", Partition: &p, Offset: &o}
	b, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var back DeadLetter
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if string(back.PayloadB64) != "{bad" || back.Error != d.Error || *back.Partition != 3 || *back.Offset != 42 || back.Stage != "decode" {
		t.Errorf("%+v", back)
	}
	if !bytes.Contains(b, []byte(`"payload_b64":"e2JhZA=="`)) || !bytes.Contains(b, []byte(`"original_topic":"orders"`)) {
		t.Errorf("%s", b)
	}
	b, _ = (&DeadLetter{}).Marshal()
	if bytes.Contains(b, []byte("stage")) || bytes.Contains(b, []byte("partition")) || bytes.Contains(b, []byte("offset")) {
		t.Errorf("optional fields written: %s", b)
	}
}

func TestPayloadFieldDecodesOnlyThatField(t *testing.T) {
	p := RawPayload([]byte(`{"before":{"a":1},"after":{"a":2,"b":"x"}}`))
	v, ok, err := p.Field("after")
	if err != nil || !ok || v.(map[string]any)["b"] != "x" {
		t.Fatalf("after = %v %v %v", v, ok, err)
	}
	if p.decoded {
		t.Fatal("Field decoded the whole payload")
	}
	if _, ok, _ := p.Field("missing"); ok {
		t.Fatal("missing field reported present")
	}
	p.Set(map[string]any{"after": "changed"})
	if v, _, _ := p.Field("after"); v != "changed" {
		t.Fatalf("Field ignores a changed payload: %v", v)
	}
	bad := RawPayload([]byte(`{"after":`))
	if _, _, err := bad.Field("after"); err == nil {
		t.Fatal("malformed data accepted")
	}
}

// TestPayloadFields follows data kept as fields through every way out of
// the Payload: each gives what the same edit of the bytes would.
func TestPayloadFields(t *testing.T) {
	orig := []byte(`{"before":{"a":1,"s":"x"},"after":{"a":2,"s":"y"},"op":"u"}`)
	p := RawPayload(orig)
	o, ok := p.Fields()
	if !ok || o.Len() != 3 {
		t.Fatalf("Fields = %v %v", o, ok)
	}
	if raw, ok := p.Raw(); !ok || &raw[0] != &orig[0] {
		t.Fatal("reading the fields changed the data's bytes")
	}
	if o2, _ := p.Fields(); o2 != o {
		t.Fatal("the split is not kept")
	}
	after, ok := p.Row(Update, "after")
	if !ok || after == nil || string(after.Field(after.Index("s")).Value) != `"y"` {
		t.Fatalf("Row(after) = %v %v", after, ok)
	}
	if v, ok := o.Lookup("before", "a"); !ok || string(v) != "1" {
		t.Fatalf("Lookup = %s %v", v, ok)
	}

	o, _ = p.EditFields()
	row, err := o.EditChild(o.Index("after"))
	if err != nil {
		t.Fatal(err)
	}
	row.Set("s", []byte(`"z"`))
	row.Delete("a")
	o.Delete("op")
	const want = `{"before":{"a":1,"s":"x"},"after":{"s":"z"}}`
	var buf []byte
	if buf, _ = p.AppendJSON(buf); string(buf) != want {
		t.Fatalf("AppendJSON = %s", buf)
	}
	if string(orig) != `{"before":{"a":1,"s":"x"},"after":{"a":2,"s":"y"},"op":"u"}` {
		t.Fatal("editing the fields wrote to the original bytes")
	}
	c := Event{Data: p}
	if b, _ := c.Clone().Data.JSON(); string(b) != want {
		t.Fatalf("clone = %s", b)
	}
	if v, ok, _ := p.Field("after"); !ok || v.(map[string]any)["s"] != "z" {
		t.Fatalf("Field(after) = %v", v)
	}
	if raw, ok := p.Raw(); !ok || string(raw) != want {
		t.Fatalf("Raw = %s %v", raw, ok)
	}
	m, err := p.Mutable()
	if err != nil {
		t.Fatal(err)
	}
	m.(map[string]any)["op"] = "c"
	if _, ok := p.Fields(); ok {
		t.Fatal("fields offered after the data changed as a value")
	}
	if b, _ := p.JSON(); string(b) != `{"after":{"s":"z"},"before":{"a":1,"s":"x"},"op":"c"}` {
		t.Fatalf("JSON after Mutable = %s", b)
	}

	var q Payload
	r := new(Object)
	if err := r.Parse([]byte(`{"k":"v"}`)); err != nil {
		t.Fatal(err)
	}
	q.SetFields(r)
	if v, err := q.Value(); err != nil || v.(map[string]any)["k"] != "v" {
		t.Fatalf("Value of set fields = %v %v", v, err)
	}
	for _, bad := range []string{`null`, `[1]`, `{"a":1,"a":2}`, `{"a":`} {
		b := RawPayload([]byte(bad))
		if _, ok := b.Fields(); ok {
			t.Errorf("Fields of %s offered", bad)
		}
	}
	for raw, want := range map[string]string{
		`{"before":{"a":1},"after":{"a":2},"after":{"a":3}}`: `{"a":3}`,
		`{"before":{"a":1}}`:      `<nil> true`,
		`{"after":"x"}`:           `<nil> true`,
		`{"after":{"a":1,"a":2}}`: `<nil> false`,
		`{"after":{"a":1}`:        `<nil> false`,
	} {
		tp := RawPayload([]byte(raw))
		row, ok := tp.TakeRow(Update, "after")
		got := fmt.Sprint("<nil> ", ok)
		if row != nil {
			got = string(row.Append(nil))
		}
		if got != want {
			t.Errorf("TakeRow of %s = %s, want %s", raw, got, want)
		}
	}
	dup := RawPayload([]byte(`{"after":{"a":1,"a":2}}`))
	if _, ok := dup.Row(Update, "after"); ok {
		t.Error("a row naming a key twice offered as fields")
	}
	if o, _ := dup.Fields(); o != nil {
		if v, ok := o.Lookup("after", "a"); !ok || string(v) != "2" {
			t.Errorf("Lookup through a key named twice = %s %v, want the last", v, ok)
		}
	}
}
