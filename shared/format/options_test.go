package format

import (
	"reflect"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/shared/spec"
)

// sinkConfig is how a storage sink embeds the options.
type sinkConfig struct {
	Bucket  string `yaml:"bucket" required:"true"`
	Options `yaml:",inline"`
}

func (c *sinkConfig) Validate() []spec.Problem { return c.Options.Validate() }

func decode(t *testing.T, src string) (*sinkConfig, []spec.Problem) {
	t.Helper()
	return spec.DecodeString[sinkConfig](src, "sinks.s3.config")
}

func TestOptionsDefaultsFromYAML(t *testing.T) {
	c, ps := decode(t, "bucket: b\n")
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	if c.Format != "json" || c.Compression != "none" || c.Envelope != "event" || c.CSV != nil {
		t.Fatalf("defaults: %+v", c.Options)
	}
	c, ps = decode(t, "bucket: b\nformat: csv\ncsv:\n  delimiter: \";\"\n")
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	want := CSVOptions{Delimiter: ";", IncludeHeader: true, QuoteChar: `"`, LineEnding: "lf", NullValue: "NULL"}
	if !reflect.DeepEqual(*c.CSV, want) {
		t.Fatalf("csv block defaults %+v, want %+v", *c.CSV, want)
	}
	if got := *orDefaults[CSVOptions](nil); !reflect.DeepEqual(got, CSVOptions{Delimiter: ",", IncludeHeader: true, QuoteChar: `"`, LineEnding: "lf", NullValue: "NULL"}) {
		t.Fatalf("absent csv block: %+v", got)
	}
	if got := *orDefaults[ParquetOptions](nil); got != (ParquetOptions{Compression: "snappy", RowGroupSize: 10000, EnableStatistics: true, DataPageSize: 1048576, DictionaryPageSize: 1048576}) {
		t.Fatalf("absent parquet block: %+v", got)
	}
	if got := *orDefaults[AvroOptions](nil); got != (AvroOptions{Compression: "none", Namespace: "rivven.events", RecordName: "Event"}) {
		t.Fatalf("absent avro block: %+v", got)
	}
	c, ps = decode(t, "bucket: b\nformat: parquet\nparquet:\n  compression: zstd\n")
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	if *c.Parquet != (ParquetOptions{Compression: "zstd", RowGroupSize: 10000, EnableStatistics: true, DataPageSize: 1048576, DictionaryPageSize: 1048576}) {
		t.Fatalf("parquet block: %+v", *c.Parquet)
	}
	// The decoded options build an encoder.
	if _, err := New(c.Options); err != nil {
		t.Fatal(err)
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, c := range []struct {
		yaml string
		want []string // "path: message fragment"
	}{
		{"format: xml", []string{"sinks.s3.config.format: "}},
		{"compression: brotli", []string{"sinks.s3.config.compression: "}},
		{"format: parquet\ncompression: gzip", []string{"sinks.s3.config.compression: compression \"gzip\" applies to json, jsonl and csv only"}},
		{"format: avro\ncompression: zstd", []string{"sinks.s3.config.compression: "}},
		{"format: json\ncsv:\n  delimiter: \";\"", []string{"sinks.s3.config.csv: csv options are set but format is json"}},
		{"format: csv\ncsv:\n  delimiter: \":\"", []string{`sinks.s3.config.csv.delimiter: unsupported delimiter ":"`}},
		{"format: csv\ncsv:\n  quote_char: \"''\"", []string{"sinks.s3.config.csv.quote_char: quote_char must be exactly one ASCII character"}},
		{"format: csv\ncsv:\n  delimiter: \"|\"\n  quote_char: \"|\"", []string{"sinks.s3.config.csv.quote_char: quote_char \"|\" cannot be the delimiter"}},
		{"format: csv\ncsv:\n  line_ending: cr", []string{"sinks.s3.config.csv.line_ending: "}},
		{"format: csv\ncsv:\n  columns: [a, b, a]", []string{`sinks.s3.config.csv.columns[2]: column "a" is listed twice`}},
		{"format: avro\navro:\n  wire_format: true", []string{"sinks.s3.config.avro.schema_id: schema_id is required with wire_format: true"}},
		{"format: avro\navro:\n  schema_id: 5", []string{"sinks.s3.config.avro.schema_id: schema_id is only used with wire_format: true"}},
		{"format: avro\navro:\n  schema: '{\"type\":\"record\"'", []string{"sinks.s3.config.avro.schema: invalid Avro schema"}},
		{"format: avro\navro:\n  schema: '\"string\"'", []string{"sinks.s3.config.avro.schema: schema must be a record"}},
		{"format: avro\navro:\n  record_name: my-event", []string{"sinks.s3.config.avro.record_name: record_name \"my-event\" is not an Avro name"}},
		{"format: avro\navro:\n  namespace: a..b", []string{"sinks.s3.config.avro.namespace: "}},
		{"format: avro\navro:\n  compression: zstandard", []string{"sinks.s3.config.avro.compression: "}},
		{"format: parquet\nparquet:\n  compression: lzo", []string{"sinks.s3.config.parquet.compression: "}},
		{"format: parquet\nparquet:\n  row_group_size: 0", []string{"sinks.s3.config.parquet.row_group_size: "}},
		{"format: parquet\nparquet:\n  data_page_size: 10", []string{"sinks.s3.config.parquet.data_page_size: "}},
		{"envelope: full", []string{"sinks.s3.config.envelope: "}},
	} {
		_, ps := decode(t, "bucket: b\n"+c.yaml+"\n")
		var got []string
		for _, p := range ps {
			got = append(got, p.Path+": "+p.Message)
		}
		for _, w := range c.want {
			found := false
			for _, g := range got {
				if strings.HasPrefix(g, w) {
					found = true
				}
			}
			if !found {
				t.Errorf("%q: problems %q, want one starting %q", c.yaml, got, w)
			}
		}
		if len(got) != len(c.want) {
			t.Errorf("%q: %d problems %q, want %d", c.yaml, len(got), got, len(c.want))
		}
	}
}

func TestNewRejectsInvalidOptions(t *testing.T) {
	_, err := New(Options{Format: "parquet", Compression: "gzip"})
	if err == nil || !strings.Contains(err.Error(), "compression") {
		t.Fatalf("New: %v", err)
	}
	// Zero options are the documented defaults: json, no compression.
	enc, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkMeta(t, enc, ".json", "application/json", "")
}

func TestOptionsSpec(t *testing.T) {
	// The options document themselves for the generated README tables:
	// every key has a doc, enums and defaults agree with Validate.
	fields := spec.FieldsOf(reflect.TypeFor[sinkConfig]())
	var walk func(prefix string, fs []spec.Field)
	seen := map[string]bool{}
	walk = func(prefix string, fs []spec.Field) {
		for _, f := range fs {
			seen[prefix+f.Name] = true
			if f.Doc == "" && f.Name != "bucket" {
				t.Errorf("%s%s has no doc", prefix, f.Name)
			}
			walk(prefix+f.Name+".", f.Fields)
		}
	}
	walk("", fields)
	for _, k := range []string{"format", "compression", "envelope", "csv.delimiter", "csv.include_header", "csv.quote_char", "csv.always_quote",
		"csv.line_ending", "csv.null_value", "csv.columns", "avro.schema", "avro.compression", "avro.wire_format", "avro.schema_id",
		"avro.namespace", "avro.record_name", "parquet.compression", "parquet.row_group_size", "parquet.enable_statistics",
		"parquet.data_page_size", "parquet.dictionary_page_size"} {
		if !seen[k] {
			t.Errorf("key %s missing from the spec", k)
		}
	}
}
