package deploy

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
)

func init() {
	type cfg struct {
		TableURI string `yaml:"table_uri"`
	}
	catalog.RegisterSink[cfg](catalog.Meta{Name: "deploytest-bucket", Category: catalog.Lakehouse, Description: "test", StorageURIKey: "table_uri"},
		func(context.Context, *cfg) (connector.Sink, error) { return nopSink{}, nil })
}

// A sink function writing to a bucket (its catalog entry names the config
// key of the location) is granted that bucket: on AWS an inline policy of
// its role for the objects under the prefix and the listing of the bucket
// there, on GCP objectAdmin of the bucket for its service account. A
// location of another cloud, a local path or a ${VAR} gets a note instead.
func TestFunctionGrantedItsBucket(t *testing.T) {
	raw := []byte(`version: "1.0"
sources:
  gen: {connector: datagen, topic: orders, config: {pattern: orders}}
  gen2: {connector: datagen, topic: orders2, config: {pattern: orders}}
  gen3: {connector: datagen, topic: orders3, config: {pattern: orders}}
sinks:
  s3lake: {connector: deploytest-bucket, topics: [orders], config: {table_uri: "s3://lake/warehouse/orders"}}
  gslake: {connector: deploytest-bucket, topics: [orders2], config: {table_uri: "gs://lake-gcp/orders"}}
  varlake: {connector: deploytest-bucket, topics: [orders3], config: {table_uri: "${TABLE_URI}"}}
`)
	for _, cloud := range []string{"aws", "gcp"} {
		res, err := Generate(parse(t, raw), raw, Options{Cloud: cloud, Modules: "../../../modules", ModulesFrom: ModulesFromCheckout, DistDir: "dist", Source: "p.yaml"})
		if err != nil {
			t.Fatal(err)
		}
		f, diags := hclwrite.ParseConfig(res.Files["main.tf"], "main.tf", hcl.InitialPos)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		grants := map[string]string{}
		for _, blk := range f.Body().Blocks() {
			if blk.Type() == "resource" && strings.HasSuffix(blk.Labels()[1], "_storage") {
				grants[blk.Labels()[0]+"."+blk.Labels()[1]] = squeeze(string(blk.Body().BuildTokens(nil).Bytes()))
			}
		}
		notes := strings.Join(res.Notes, "\n")
		switch cloud {
		case "aws":
			g := grants["aws_iam_role_policy.sink_s3lake_storage"]
			if len(grants) != 1 || !strings.Contains(g, `role = module.sink_s3lake.role_name`) ||
				!strings.Contains(g, `Resource = "arn:aws:s3:::lake/warehouse/orders/*"`) ||
				!strings.Contains(g, `"s3:prefix" = ["warehouse/orders/*"]`) || !strings.Contains(g, `"s3:PutObject"`) {
				t.Fatalf("aws grants %v", grants)
			}
			if !strings.Contains(notes, "sinks.gslake.config.table_uri is a gs:// location") {
				t.Errorf("aws notes: %s", notes)
			}
		case "gcp":
			g := grants["google_storage_bucket_iam_member.sink_gslake_storage"]
			if len(grants) != 1 || !strings.Contains(g, `bucket = "lake-gcp"`) || !strings.Contains(g, `role = "roles/storage.objectAdmin"`) ||
				!strings.Contains(g, `member = "serviceAccount:${module.sink_gslake.service_account_email}"`) {
				t.Fatalf("gcp grants %v", grants)
			}
			if !strings.Contains(notes, "sinks.s3lake.config.table_uri is a s3:// location") {
				t.Errorf("gcp notes: %s", notes)
			}
		}
		if !strings.Contains(notes, "sinks.varlake.config.table_uri is ${TABLE_URI}") {
			t.Errorf("%s notes: %s", cloud, notes)
		}
	}
}
