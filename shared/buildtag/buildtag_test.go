package buildtag

import (
	"go/build/constraint"
	"testing"
)

func TestFor(t *testing.T) {
	for _, c := range []struct{ kind, name, want string }{
		{"source", "postgres-cdc", "sources.postgres_cdc"},
		{"source", "kafka-source", "sources.kafka"},
		{"sink", "kafka-sink", "sinks.kafka"},
		{"sink", "object-storage", "sinks.object_storage"},
		{"sink", "azure-blob", "sinks.azure_blob"},
		{"transform", "MaskField", "transforms.mask_field"},
		{"transform", "mask_field", "transforms.mask_field"},
		{"transform", "ExtractNewRecordState", "transforms.extract_new_record_state"},
		{"transform", "JSONPath", "transforms.json_path"},
		{"transform", "Cast", "transforms.cast"},
	} {
		if got := For(c.kind, c.name); got != c.want {
			t.Errorf("For(%q, %q) = %q, want %q", c.kind, c.name, got, c.want)
		}
	}
	if got := Transport("kafka"); got != "transports.kafka" {
		t.Errorf("Transport = %q", got)
	}
	if got := Loader("s3"); got != "loaders.s3" {
		t.Errorf("Loader = %q", got)
	}
	if got := Host("cloudrun"); got != "hosts.cloudrun" {
		t.Errorf("Host = %q", got)
	}
}

// TestConstraint evaluates the generated expression the way the go command
// does: a plain build, a custom build with the group, with the member, and
// with neither.
func TestConstraint(t *testing.T) {
	expr, err := constraint.Parse("//go:build " + Constraint("sinks.stdout"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tags []string
		want bool
	}{
		{nil, true},
		{[]string{"custom", "sinks"}, true},
		{[]string{"custom", "sinks.stdout"}, true},
		{[]string{"custom", "sinks.drop", "sources.stdout"}, false},
		{[]string{"custom"}, false},
	} {
		set := map[string]bool{}
		for _, tag := range c.tags {
			set[tag] = true
		}
		if got := expr.Eval(func(tag string) bool { return set[tag] }); got != c.want {
			t.Errorf("tags %v: linked = %v, want %v", c.tags, got, c.want)
		}
	}
}

func TestKnowAndLookup(t *testing.T) {
	Know(Component{Kind: "sink", Name: "far-away-sink", Aliases: []string{"distant"}})
	for _, n := range []string{"far-away-sink", "FarAwaySink", "far_away_sink", "distant"} {
		c, ok := Lookup("sink", n)
		if !ok || c.Tag() != "sinks.far_away" {
			t.Errorf("Lookup(sink, %q) = %+v, %v", n, c, ok)
		}
	}
	if _, ok := Lookup("source", "far-away-sink"); ok {
		t.Error("a sink was found as a source")
	}
}

func TestSetString(t *testing.T) {
	s := Set{}
	s.Add("sinks.stdout", "sources.datagen", "sinks.stdout")
	if got := s.String(); got != "custom,sinks.stdout,sources.datagen" {
		t.Errorf("String = %q", got)
	}
}

func TestNormalize(t *testing.T) {
	for _, in := range []string{"ExtractNewRecordState", "extract_new_record_state", "extract-new-record-state", "Extract-New_Record-State"} {
		if got := Normalize(in); got != "extractnewrecordstate" {
			t.Errorf("Normalize(%q) = %q, want extractnewrecordstate", in, got)
		}
	}
	if got := Normalize("s3"); got != "s3" {
		t.Errorf("Normalize(s3) = %q", got)
	}
}
