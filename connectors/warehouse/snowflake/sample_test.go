package snowflake

import (
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/shared/spec"
)

// TestSamplePipelineConfig: the shipped postgres-to-snowflake sample's
// sink config is valid once ${SNOWFLAKE_PRIVATE_KEY} holds a key.
func TestSamplePipelineConfig(t *testing.T) {
	doc, err := os.ReadFile("../../../samples/pipelines/postgres-to-snowflake.yaml")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile("testdata/rsa_key.p8")
	expanded := strings.ReplaceAll(string(doc), "${SNOWFLAKE_PRIVATE_KEY}", `"`+strings.ReplaceAll(string(key), "\n", `\n`)+`"`)
	var p struct {
		Sinks map[string]struct {
			Connector string    `yaml:"connector"`
			Config    yaml.Node `yaml:"config"`
		} `yaml:"sinks"`
	}
	if err := yaml.Unmarshal([]byte(expanded), &p); err != nil {
		t.Fatal(err)
	}
	sk := p.Sinks["snowflake"]
	if sk.Connector != "snowflake" {
		t.Fatalf("sample has no snowflake sink: %+v", p.Sinks)
	}
	b, err := yaml.Marshal(&sk.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfg, ps := spec.DecodeString[Config](string(b), "sinks.snowflake.config")
	if len(ps) > 0 {
		t.Fatal(spec.Problems(ps))
	}
	if _, err := readKey(cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.pipe() != "ORDERS-STREAMING" || cfg.baseURL() != "https://myorg-account123.snowflakecomputing.com" {
		t.Errorf("pipe %s, url %s", cfg.pipe(), cfg.baseURL())
	}
}
