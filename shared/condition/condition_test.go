package condition

import (
	"errors"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/spec"
)

func ev(t events.Type, data string) *events.Event {
	e := events.New(t, "orders", events.RawPayload([]byte(data)))
	ns := "public"
	e.Namespace = &ns
	e.Source = &events.SourceInfo{Connector: "postgres-cdc", Database: "shop_prod", Schema: "public", Table: "orders"}
	e.Key = []byte(`{"id":"A-17"}`)
	return e
}

var (
	insert = ev(events.Insert, `{"id":"A-17","amount":150.5,"qty":3,"status":"paid","customer":{"tier":"gold","email":null},"big":9007199254740993,"price":"99.90","vip":true}`)
	update = ev(events.Update, `{"before":{"id":"A-17","amount":90,"status":"pending"},"after":{"id":"A-17","amount":120,"status":"shipped"}}`)
	del    = ev(events.Delete, `{"id":"A-17","amount":10,"status":"cancelled"}`)
	schema = ev(events.Schema, `{"columns":[]}`)
)

func TestConditions(t *testing.T) {
	cases := []struct {
		cond string
		e    *events.Event
		want bool
	}{
		{"value.amount > 100", insert, true}, // the reference's own example
		{"value.amount > 100", update, true},
		{"value.amount > 100", del, false},
		{"value.amount > 150.5", insert, false},
		{"value.amount >= 150.5", insert, true},
		{"amount > 100", insert, true},
		{"value.qty == 3", insert, true},
		{"value.qty != 3", insert, false},
		{"value.big > 9007199254740992", insert, true}, // exact beyond float64's 2^53
		{`value.price < 100`, insert, true},            // decimal sent as a string
		{`value.price > "100"`, insert, true},          // string vs string is lexicographic
		{"before.status == 'pending' && after.status == \"shipped\"", update, true},
		{"before.status == 'pending'", insert, false},
		{"before.amount < after.amount", update, true},
		{`value.customer.tier in ["gold", "platinum"]`, insert, true},
		{`value.customer.tier in ["silver"]`, insert, false},
		{`!(value.status in ["cancelled", "refunded"])`, del, false},
		{`not value.status in ["cancelled"]`, insert, true},
		{`value.customer.email is null`, insert, true},
		{`value.customer.phone is null`, insert, true},
		{`value.customer is not null`, insert, true},
		{`value.nothing.deeper is null`, insert, true},
		{`key.id matches "^A-[0-9]+$"`, insert, true},
		{`value.id matches "^B"`, insert, false},
		{`op == "c"`, insert, true},
		{`op == "u" and table == "orders"`, update, true},
		{`event_type == "delete" || op == "u"`, del, true},
		{`schema == "public" && database matches "_prod$" && stream == "orders"`, insert, true},
		{`namespace == "public"`, insert, true},
		{`value.vip`, insert, true},
		{`value.vip == true && !false`, insert, true},
		{`(value.amount > 1000 || value.qty >= 3) && value.status != "void"`, insert, true},
		{`value.amount > 1 && value.amount < 2 || value.qty == 3`, insert, true}, // && binds tighter
		{`value.status == null`, schema, true},
		{`value.amount > -5`, del, true},
		{`value.amount > "abc"`, insert, false}, // number vs non-numeric string: not comparable
		{`value.amount == "150.5"`, insert, true},
		{`value.status != 5`, insert, true},
		{`metadata.position is null`, insert, true},
	}
	for _, c := range cases {
		cond, err := Compile(c.cond)
		if err != nil {
			t.Errorf("%s: %v", c.cond, err)
			continue
		}
		if got := cond.Match(c.e); got != c.want {
			t.Errorf("%s on %s = %v, want %v", c.cond, c.e.Type, got, c.want)
		}
	}
}

func TestCompileErrorsNameTheColumn(t *testing.T) {
	cases := []struct {
		cond string
		col  int
		msg  string
	}{
		{"", 1, "empty"},
		{"value.amount > ", 16, "expected a field, a value or ("},
		{"value.amount = 100", 14, `use "=="`},
		{"value.amount > 100 &&", 22, "expected a field"},
		{"(value.amount > 100", 20, "expected ) to close the ( at column 1"},
		{`value.name matches 5`, 20, "quoted regular expression"},
		{`value.name matches "(["`, 20, "bad regular expression"},
		{`value.x in "a"`, 12, "needs a list"},
		{`value.x in [a]`, 13, "list items must be literals"},
		{`value.x is empty`, 12, "expected null after is"},
		{`"abc" > 5`, 7, "cannot compare string with number"},
		{`value.x < true`, 9, "cannot order boolean"},
		{`value.x > 1 value.y`, 13, "unexpected"},
		{`'open`, 1, "unterminated string"},
		{`value.x # 1`, 9, "unexpected character"},
		{`value..x > 1`, 1, "empty segment"},
		{`5`, 2, "alone is not a condition"},
	}
	for _, c := range cases {
		_, err := Compile(c.cond)
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("%q: err = %v, want a column error", c.cond, err)
			continue
		}
		if ce.Column != c.col || !strings.Contains(ce.Msg, c.msg) {
			t.Errorf("%q: column %d %q, want column %d containing %q", c.cond, ce.Column, ce.Msg, c.col, c.msg)
		}
	}
}

func TestPredicates(t *testing.T) {
	rec := events.New(events.Record, "clicks", events.RawPayload([]byte(`{"page":"/a"}`)))
	cases := []struct {
		yaml string
		e    *events.Event
		want bool
	}{
		{"table: orders", insert, true},
		{"tables: [users, orders]", update, true},
		{"tables: [public.orders]", update, true},
		{"table: users", insert, false},
		{"table: clicks", rec, true}, // no source block: the stream is the table
		{"schema: public", insert, true},
		{"schemas: [audit]", insert, false},
		{`database: "^shop_"`, insert, true},
		{`database: "^crm_"`, insert, false},
		{"operations: [insert, u]", update, true},
		{"operations: [c]", del, false},
		{"operations: [snapshot, truncate]", insert, false},
		{"field_exists: customer.tier", insert, true},
		{"field_exists: customer.email", insert, false}, // null counts as absent
		{"field_value: {field: status, value: paid}", insert, true},
		{"field_value: {field: qty, value: '3.0'}", insert, true},
		{"field_value: {field: status, value: shipped}", update, true},
		{"condition: value.amount > 100", insert, true},
		{"{table: orders, operations: [delete]}", insert, false},
		{"{table: orders, operations: [delete], negate: true}", insert, true},
		{"{}", schema, true},
	}
	for _, c := range cases {
		p, ps := spec.DecodeString[Predicate](c.yaml, "predicate")
		if len(ps) > 0 {
			t.Errorf("%s: %v", c.yaml, ps)
			continue
		}
		m, err := p.Compile()
		if err != nil {
			t.Errorf("%s: %v", c.yaml, err)
			continue
		}
		if got := m(c.e); got != c.want {
			t.Errorf("%s on %s %s = %v, want %v", c.yaml, c.e.Type, c.e.Stream, got, c.want)
		}
	}
}

func TestPredicateProblemsHavePaths(t *testing.T) {
	_, ps := spec.DecodeString[Predicate]("database: '(['\noperations: [insert, upsert]\ncondition: 'value.x = 1'\n", "sinks.s.transforms[0].predicate")
	got := spec.Problems(ps).Error()
	for _, want := range []string{
		"sinks.s.transforms[0].predicate.database (line 1:11): bad regular expression",
		`sinks.s.transforms[0].predicate.operations[1] (line 2:22): "upsert" is not an operation`,
		`sinks.s.transforms[0].predicate.condition (line 3:12): column 9: "=" is not an operator`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	c := MustCompile(`value.amount > 100 && value.status in ["paid", "shipped"] && op != "d"`)
	e := ev(events.Insert, `{"id":"A-17","amount":150.5,"status":"paid"}`)
	e.Data.Value() // rows are decoded once per event and shared by a chain
	b.ReportAllocs()
	for b.Loop() {
		if !c.Match(e) {
			b.Fatal("no match")
		}
	}
}
