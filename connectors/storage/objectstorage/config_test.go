package objectstorage

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/spec"
)

// TestConfigProblems: each mistake is reported at its YAML path with a
// message naming what is allowed.
func TestConfigProblems(t *testing.T) {
	for _, c := range []struct {
		name, yaml, path, msg string
	}{
		{"unknown provider", "provider: ftp\nbucket: b\n", "config.provider", "s3"},
		{"s3 without bucket", "provider: s3\n", "config.bucket", "required"},
		{"bucket is a path", "provider: s3\nbucket: a/b\n", "config.bucket", "no /"},
		{"prefix escapes", "provider: local\nbucket: b\nprefix: ../x\nlocal: {root: /tmp}\n", "config.prefix", ".."},
		{"local without root", "provider: local\nbucket: b\n", "config.local.root", "required"},
		{"bad partitioning", "provider: s3\nbucket: b\npartitioning: week\n", "config.partitioning", "hour"},
		{"bad format", "provider: s3\nbucket: b\nformat: xml\n", "config.format", "jsonl"},
		{"compression on parquet", "provider: s3\nbucket: b\nformat: parquet\ncompression: gzip\n", "config.compression", "parquet.compression"},
		{"batch_size zero", "provider: s3\nbucket: b\nbatch_size: 0\n", "config.batch_size", ""},
		{"s3 half a key", "provider: s3\nbucket: b\ns3: {access_key_id: AKIA}\n", "config.s3.secret_access_key", "together"},
		{"s3 bad endpoint", "provider: s3\nbucket: b\ns3: {endpoint: minio:9000}\n", "config.s3.endpoint", "http"},
		{"other provider's block", "provider: s3\nbucket: b\ngcs: {use_adc: true}\n", "config.gcs", "provider is s3"},
		{"azure no block", "provider: azure\nbucket: c\n", "config.azure", "account"},
		{"azure two credentials", "provider: azure\nbucket: c\nazure: {account: a, access_key: k, sas_token: s}\n", "config.azure.sas_token", "access_key and sas_token"},
		{"azure key and identity", "provider: azure\nbucket: c\nazure: {account: a, access_key: k, use_managed_identity: true}\n", "config.azure.use_managed_identity", "choose one"},
		{"azure no account", "provider: azure\nbucket: c\nazure: {access_key: k}\n", "config.azure.account", "connection_string"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, ps := spec.DecodeString[Config](c.yaml, "config")
			for _, p := range ps {
				if p.Path == c.path && strings.Contains(p.Message, c.msg) {
					if p.Line == 0 {
						t.Errorf("problem at %s has no line", p.Path)
					}
					return
				}
			}
			t.Fatalf("want a problem at %s mentioning %q, got %v", c.path, c.msg, spec.Problems(ps))
		})
	}
}

// TestSecretsNotEchoed: a wrong value of a secret key is not repeated in
// problems.
func TestSecretsNotEchoed(t *testing.T) {
	const secret = "sUp3rS3cr3t"
	_, ps := spec.DecodeString[Config]("provider: azure\nbucket: c\nazure: {account: a, access_key: "+secret+", connection_string: "+secret+"}\n", "config")
	if len(ps) == 0 {
		t.Fatal("want problems")
	}
	if strings.Contains(spec.Problems(ps).Error(), secret) {
		t.Fatalf("secret echoed: %v", spec.Problems(ps))
	}
}

// TestGoodConfigs decode without problems and get their defaults.
func TestGoodConfigs(t *testing.T) {
	cfg := decodeConfig(t, "provider: s3\nbucket: lake\ns3: {region: eu-west-1}\n")
	if cfg.Format != "json" || cfg.Compression != "none" || cfg.Partitioning != "none" || cfg.BatchSize != 1000 || cfg.FlushIntervalSecs != 60 {
		t.Errorf("defaults: %+v", cfg.Settings)
	}
	for _, src := range []string{
		"provider: s3\nbucket: b\n", // default credential chain, default region
		"provider: gcs\nbucket: b\ngcs: {use_adc: true}\n",
		"provider: azure\nbucket: c\nazure: {connection_string: 'AccountName=a;AccountKey=a2V5;EndpointSuffix=core.windows.net'}\n",
		"provider: azure\nbucket: c\nazure: {account: a, use_managed_identity: true}\n",
		"provider: azure\nbucket: c\nazure: {account: a}\n", // default chain
		"provider: local\nbucket: b\nlocal: {root: /tmp}\nformat: csv\ncsv: {delimiter: ';'}\n",
	} {
		decodeConfig(t, src)
	}
}

// TestLegacyNames: s3, gcs and azure-blob (any spelling) are the same sink
// with the provider fixed; setting another provider under them is an error.
func TestLegacyNames(t *testing.T) {
	for _, c := range []struct{ name, cfg, provider string }{
		{"object-storage", "provider: local\nbucket: b\nlocal: {root: /tmp}\n", ProviderLocal},
		{"object_store", "provider: local\nbucket: b\nlocal: {root: /tmp}\n", ProviderLocal},
		{"s3", "bucket: b\ns3: {region: us-east-1, endpoint: 'http://127.0.0.1:9', force_path_style: true, access_key_id: k, secret_access_key: s}\n", ProviderS3},
		{"S3", "provider: s3\nbucket: b\n", ProviderS3},
		{"gcs", "bucket: b\ngcs: {endpoint: 'http://127.0.0.1:9/storage/v1/'}\n", ProviderGCS},
		{"azure-blob", "bucket: c\nazure: {account: devstoreaccount1, access_key: a2V5, endpoint: 'http://127.0.0.1:9/devstoreaccount1'}\n", ProviderAzure},
		{"azure_blob", "bucket: c\nazure: {account: a, sas_token: 'sv=1&sig=x'}\n", ProviderAzure},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, ok := catalog.Lookup(catalog.Sink, c.name)
			if !ok {
				t.Fatalf("%s is not registered", c.name)
			}
			var node yaml.Node
			if err := yaml.Unmarshal([]byte(c.cfg), &node); err != nil {
				t.Fatal(err)
			}
			v, err := e.Instantiate(context.Background(), &node, "config")
			if err != nil {
				t.Fatal(err)
			}
			s := v.(*Sink)
			if s.cfg.Provider != c.provider {
				t.Errorf("provider %q, want %q", s.cfg.Provider, c.provider)
			}
		})
	}
	e, _ := catalog.Lookup(catalog.Sink, "gcs")
	var node yaml.Node
	_ = yaml.Unmarshal([]byte("provider: s3\nbucket: b\n"), &node)
	_, ps := e.Decode(&node, "config")
	if len(ps) != 1 || ps[0].Path != "config.provider" || !strings.Contains(ps[0].Message, "object-storage") {
		t.Fatalf("gcs with provider s3: want one problem at config.provider, got %v", spec.Problems(ps))
	}
	if e, _ := catalog.Lookup(catalog.Sink, "object-storage"); e.Category != catalog.Storage || e.Subcategory != "Object" {
		t.Errorf("category %s/%s", e.Category, e.Subcategory)
	}
}

// TestAzureSecretsNotInErrors: a malformed connection string fails at
// startup, and a write to an unreachable endpoint with a SAS fails (net/http
// quotes the whole request URL), without quoting the secret.
func TestAzureSecretsNotInErrors(t *testing.T) {
	noRetries = true // nothing listens at the endpoint: fail at once
	t.Cleanup(func() { noRetries = false })
	for _, c := range []struct{ cfg, secret string }{
		{"azure: {account: a, endpoint: 'http://127.0.0.1:1/a', sas_token: '?sv=2020-08-04&sp=rwdc&se=2030-01-01T00:00:00Z&sr=c&sig=s3cr3tS1gnature%2Babc%3D'}", "s3cr3tS1gnature"},
		{"azure: {connection_string: 'BlobEndpoint=http://127.0.0.1:1/a;SharedAccessSignature=sv=2020-08-04&sp=rwdc&sr=c&sig=s3cr3tS4S%2Bx%3D'}", "s3cr3tS4S"},
		{"azure: {connection_string: 'AccountName=a;AccountKey=s3cr3tK3y==;BlobEndpoint=http://%zz'}", "s3cr3tK3y"},
	} {
		// Construction or, for a SAS the SDK only parses per request, the
		// first write fails.
		s, err := newSink(context.Background(), decodeConfig(t, "provider: azure\nbucket: c\n"+c.cfg+"\n"))
		if err == nil {
			err = s.Write(context.Background(), orders(1, time.Now(), time.Second))
		}
		if err == nil {
			t.Errorf("%s: want an error", c.cfg)
			continue
		}
		if strings.Contains(err.Error(), c.secret) {
			t.Errorf("secret in error: %v", err)
		}
		t.Logf("%v", err)
	}
}
