package all

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/shared/catalog"
)

// referenceMetricSections maps the reference's sections that have a
// metrics table to the connector they document.
var referenceMetricSections = map[string]string{
	"Kafka Source":                        "kafka-source",
	"Kafka Sink":                          "kafka-sink",
	"SQS Sink":                            "sqs-sink",
	"Google Cloud Pub/Sub Sink":           "pubsub-sink",
	"Snowflake":                           "snowflake",
	"Databricks":                          "databricks",
	"ClickHouse":                          "clickhouse",
	"Apache Iceberg":                      "iceberg",
	"Delta Lake":                          "delta-lake",
	"Qdrant (Vector Database)":            "qdrant",
	"Pinecone (Vector Database)":          "pinecone",
	"Amazon S3 Vectors (Vector Database)": "s3-vectors",
}

// referenceInlineMetrics maps the reference's inline metric lists
// ("**Metrics (chat):** `llm.chat.requests.success`, …") to the connector
// they document.
var referenceInlineMetrics = map[string]string{
	"chat":      "llm-chat",
	"embedding": "llm-embedding",
}

var (
	sectionHeading = regexp.MustCompile(`^#{2,3} (.+)$`)
	metricRow      = regexp.MustCompile("^\\| `([a-z0-9_.]+)` \\| (?i:counter|gauge|histogram)")
	inlineList     = regexp.MustCompile(`^\*\*Metrics \(([^)]+)\):\*\* (.+)$`)
	inlineName     = regexp.MustCompile("`([a-z0-9_]+(?:\\.[a-z0-9_]+)+)`")
)

// metricTables reads the metric tables of a markdown file: for each
// section (## or ### heading), the metric names of its rows.
func metricTables(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	sec := ""
	for _, l := range strings.Split(string(b), "\n") {
		if m := sectionHeading.FindStringSubmatch(l); m != nil {
			sec = m[1]
		}
		if m := metricRow.FindStringSubmatch(l); m != nil {
			out[sec] = append(out[sec], m[1])
		}
		if m := inlineList.FindStringSubmatch(l); m != nil {
			for _, n := range inlineName.FindAllStringSubmatch(m[2], -1) {
				out["inline:"+m[1]] = append(out["inline:"+m[1]], n[1])
			}
		}
	}
	return out
}

// TestMetricNamesAsTheReferenceDocuments: every metric the reference's
// tables name for a connector that exists here is one it declares (and so
// exports, under the Prometheus form of the name that README "Metrics"
// describes), and every section with a table is mapped above, so a new
// table is not silently unchecked.
func TestMetricNamesAsTheReferenceDocuments(t *testing.T) {
	tables := metricTables(t, filepath.Join("testdata", "reference", "connectors.md"))
	for sec, names := range tables {
		name, ok := referenceMetricSections[sec]
		if list, inline := strings.CutPrefix(sec, "inline:"); inline {
			name, ok = referenceInlineMetrics[list]
		}
		if !ok {
			t.Errorf("the reference's section %q has a metrics table or list; map it to its connector in referenceMetricSections or referenceInlineMetrics", sec)
			continue
		}
		e := lookupAny(name)
		if e == nil {
			t.Logf("%s: not built yet, its %d reference metrics unchecked", name, len(names))
			continue
		}
		for _, n := range names {
			if !slices.Contains(e.Metrics, n) {
				t.Errorf("%s does not declare the reference's metric %s (declares %v)", name, n, e.Metrics)
			}
		}
	}
}

// TestMetricsInREADMEs: a connector's README names every metric its
// catalog entry declares.
func TestMetricsInREADMEs(t *testing.T) {
	for _, e := range catalog.All() {
		if len(e.Metrics) == 0 || e.LegacyOf != "" {
			continue
		}
		path := filepath.Join("..", "..", strings.TrimPrefix(e.Package(), module), "README.md")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range e.Metrics {
			if !strings.Contains(string(b), "`"+m+"`") {
				t.Errorf("%s %s: metric %s is not named in %s", e.Kind, e.Name, m, path)
			}
		}
	}
}

// lookupAny finds the connector the reference names, however it was
// registered: by name or alias, or by a name that differs only in
// punctuation and case ("delta-lake", "delta_lake", "deltalake"), so a
// connector added under another spelling is still checked rather than
// taken for one not built yet.
func lookupAny(name string) *catalog.Entry {
	for _, k := range []catalog.Kind{catalog.Source, catalog.Sink, catalog.Transform} {
		if e, ok := catalog.Default.Lookup(k, name); ok {
			return e
		}
	}
	want := squash(name)
	for _, e := range catalog.All() {
		if squash(e.Name) == want {
			return e
		}
		for _, a := range e.Aliases {
			if squash(a) == want {
				return e
			}
		}
	}
	return nil
}

func squash(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return -1
	}, s)
}

// The inline lists are read: the LLM transforms' metrics are checked as
// the tables' are.
func TestReferenceInlineMetricListsAreRead(t *testing.T) {
	tables := metricTables(t, filepath.Join("testdata", "reference", "connectors.md"))
	for list := range referenceInlineMetrics {
		if len(tables["inline:"+list]) < 5 {
			t.Errorf("the reference's inline list %q gave %v", list, tables["inline:"+list])
		}
	}
}
