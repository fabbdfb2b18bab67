//go:build !custom

package all

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/config"
)

// example is one ```yaml block of the reference.
type example struct {
	line    int    // of its first YAML line
	heading string // the headings above it, "## A / ### B"
	body    string
}

// referenceExamples extracts the YAML examples of a Markdown document.
func referenceExamples(t *testing.T, path string) []example {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out   []example
		heads [7]string
		cur   *example
		n     int
		fence bool // inside a code block that is not YAML
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		l := sc.Text()
		switch {
		case cur != nil && strings.HasPrefix(l, "```"):
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.body += l + "\n"
		case fence:
			fence = !strings.HasPrefix(l, "```")
		case strings.HasPrefix(l, "```") && !strings.HasPrefix(l, "```yaml"):
			fence = true
		case strings.HasPrefix(l, "```yaml"):
			var hs []string
			for _, h := range heads {
				if h != "" {
					hs = append(hs, h)
				}
			}
			cur = &example{line: n + 1, heading: strings.Join(hs, " / ")}
		case strings.HasPrefix(l, "#"):
			level := len(l) - len(strings.TrimLeft(l, "#"))
			if level < len(heads) && strings.HasPrefix(l[level:], " ") {
				heads[level] = l
				for i := level + 1; i < len(heads); i++ {
					heads[i] = ""
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// incomplete are the reference's examples that leave out what its own
// tables mark required, to show one feature, by first YAML line: they
// are expected to be refused, for this reason (and the test says so when
// one stops being refused).
var incomplete = map[int]string{
	1820: "shows a sink's rate_limit; leaves out topics, which the sink table marks required",
	1793: "shows s3-vectors' metadata keys alone; leaves out region, vector_bucket_name, index_name and dimension",
	1651: "shows pinecone's sparse vector keys alone; leaves out api_key and index_host",
	2286: "shows the LLM transforms feeding qdrant; leaves out postgres-cdc's connection settings and the sink's topics (samples/pipelines/rag.yaml is the complete pipeline)",
	141:  "shows topic_config; leaves out postgres-cdc's connection settings (host, database, user, password, slot_name, publication_name)",
	2105: "shows output compression; leaves out topics, which the sink table marks required",
	2118: "shows Parquet compression; leaves out topics, which the sink table marks required",
	2146: "shows a transform chain; leaves out postgres-cdc's connection settings",
	1070: "shows iceberg's REST catalog settings; leaves out namespace and table, which the iceberg table marks required",
	1098: "shows iceberg's s3 block alone (MinIO); leaves out catalog, namespace and table, which the iceberg table marks required",
	2388: "shows a secrets block; leaves out the source's topic and postgres-cdc's connection settings",
	766:  "shows placeholders (<shard-id>, <region>, <workspace>) for the Zerobus endpoint and workspace URL, which the databricks sink's endpoint format validation refuses",
}

// TestReferenceExamplesValidate validates every YAML example of the
// reference (testdata/reference/connectors.md) through the loader every
// command uses. A fragment (a config block, a transforms list, a settings
// block) is placed where the reference shows it: a config block in the
// connector of its section (object storage for the output formats), a
// transforms list in a source, settings beside a sink. Examples naming a
// connector or transform that does not exist here yet are skipped and
// listed.
func TestReferenceExamplesValidate(t *testing.T) {
	exs := referenceExamples(t, filepath.Join("testdata", "reference", "connectors.md"))
	if len(exs) < 50 {
		t.Fatalf("only %d examples found", len(exs))
	}
	var skipped []string
	validated := 0
	lastSink := ""
	for _, ex := range exs {
		var root yaml.Node
		if err := yaml.Unmarshal([]byte(ex.body), &root); err != nil || len(root.Content) == 0 {
			t.Errorf("line %d (%s): not YAML: %v", ex.line, ex.heading, err)
			continue
		}
		top := root.Content[0]
		keys := map[string]*yaml.Node{}
		for i := 0; i+1 < len(top.Content); i += 2 {
			keys[top.Content[i].Value] = top.Content[i+1]
		}
		doc := ex.body
		switch {
		case keys["sources"] != nil || keys["sinks"] != nil:
			if c := firstConnector(keys["sinks"]); c != "" {
				lastSink = c
			}
		case keys["config"] != nil && len(keys) == 1:
			cfg := keys["config"]
			switch {
			case strings.Contains(ex.heading, "## Output Formats"):
				// "Storage sinks (S3, GCS, Azure Blob) support multiple
				// output formats": the block of an object-storage sink.
				if child(cfg, "bucket") == nil {
					cfg.Content = append(cfg.Content, scalar("bucket"), scalar("example-bucket"))
				}
				doc = wrapSink("object-storage", cfg)
			case strings.Contains(ex.heading, "### Environment Variables"):
				skipped = append(skipped, fmt.Sprintf("line %d (%s): a config fragment of no particular connector", ex.line, ex.heading))
				continue
			case lastSink != "":
				doc = wrapSink(lastSink, cfg)
			default:
				t.Errorf("line %d (%s): a config block with no connector before it", ex.line, ex.heading)
				continue
			}
		case keys["transforms"] != nil && len(keys) == 1:
			doc = "sources:\n  example:\n    connector: datagen\n    topic: t\n    config: {pattern: orders}\n" + indent(ex.body, 4)
		case keys["settings"] != nil || keys["broker"] != nil:
			// Pipeline-wide blocks alone: beside a sink.
			doc = ex.body + "sinks:\n  example: {connector: stdout, topics: [t]}\n"
		default:
			t.Errorf("line %d (%s): an example of an unknown shape (keys %v)", ex.line, ex.heading, sortedKeys(keys))
			continue
		}
		if missing := missingComponents(t, doc); len(missing) > 0 {
			skipped = append(skipped, fmt.Sprintf("line %d (%s): %s does not exist yet", ex.line, ex.heading, strings.Join(missing, ", ")))
			continue
		}
		_, err := config.Parse([]byte(doc), catalog.Default, config.Options{Env: func(string) (string, bool) { return "placeholder", true }})
		why, partial := incomplete[ex.line]
		switch {
		case err != nil && !partial:
			t.Errorf("line %d (%s): the reference's example is refused:\n%v\n--- as validated:\n%s", ex.line, ex.heading, err, doc)
		case err == nil && partial:
			t.Errorf("line %d (%s): now validates; remove it from incomplete (%s)", ex.line, ex.heading, why)
		case partial:
			skipped = append(skipped, fmt.Sprintf("line %d (%s): refused as expected: %s", ex.line, ex.heading, why))
		default:
			validated++
		}
	}
	t.Logf("%d of %d examples validated; skipped:\n%s", validated, len(exs), strings.Join(skipped, "\n"))
}

// firstConnector is the connector of the first entry of a sources or
// sinks block.
func firstConnector(m *yaml.Node) string {
	if m == nil || m.Kind != yaml.MappingNode || len(m.Content) < 2 {
		return ""
	}
	if c := child(m.Content[1], "connector"); c != nil {
		return c.Value
	}
	return ""
}

func child(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }

// wrapSink makes a config block the config of a sink.
func wrapSink(connector string, cfg *yaml.Node) string {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(cfg); err != nil {
		panic(err)
	}
	return "sinks:\n  example:\n    connector: " + connector + "\n    topics: [t]\n    config:\n" + indent(b.String(), 6)
}

func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = pad + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

func sortedKeys(m map[string]*yaml.Node) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// missingComponents lists the connectors and transforms a pipeline names
// that are not registered.
func missingComponents(t *testing.T, doc string) []string {
	t.Helper()
	var f struct {
		Sources map[string]struct {
			Connector  string    `yaml:"connector"`
			Transforms yaml.Node `yaml:"transforms"`
		} `yaml:"sources"`
		Sinks map[string]struct {
			Connector  string    `yaml:"connector"`
			Transforms yaml.Node `yaml:"transforms"`
		} `yaml:"sinks"`
	}
	if err := yaml.Unmarshal([]byte(doc), &f); err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	var missing []string
	check := func(kind catalog.Kind, name string, ts yaml.Node) {
		if _, ok := catalog.Lookup(kind, name); !ok && name != "" {
			missing = append(missing, string(kind)+" "+name)
		}
		// The list form, or the map of named steps.
		var steps []*yaml.Node
		switch ts.Kind {
		case yaml.SequenceNode:
			steps = ts.Content
		case yaml.MappingNode:
			for i := 1; i < len(ts.Content); i += 2 {
				steps = append(steps, ts.Content[i])
			}
		}
		for _, st := range steps {
			var tr transformOf
			if err := st.Decode(&tr); err != nil {
				t.Fatal(err)
			}
			name := tr.Type
			if name == "" {
				name = tr.Transform
			}
			if _, ok := catalog.Lookup(catalog.Transform, name); !ok {
				missing = append(missing, "transform "+name)
			}
		}
	}
	for _, s := range f.Sources {
		check(catalog.Source, s.Connector, s.Transforms)
	}
	for _, s := range f.Sinks {
		check(catalog.Sink, s.Connector, s.Transforms)
	}
	sort.Strings(missing)
	return missing
}

type transformOf struct {
	Type      string `yaml:"type"`
	Transform string `yaml:"transform"`
}
