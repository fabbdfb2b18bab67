package deploy

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/objstore"
)

// storageGrant is the bucket a sink function writes to, read from the
// config key its catalog entry names (StorageURIKey): the function's role
// (AWS) or service account (GCP) is granted read, write, list and delete
// under the location's prefix.
type storageGrant struct {
	loc objstore.Location
}

// storageOf returns the grant of a sink, or a note saying why none is
// generated for a sink that writes to a bucket.
func (g *gen) storageOf(s *sinkPlan) (*storageGrant, string) {
	sk := g.p.Sinks[s.name]
	e, ok := catalog.Default.Lookup(catalog.Sink, sk.Connector)
	if !ok || e.StorageURIKey == "" {
		return nil, ""
	}
	node := &sk.Config
	if node.Kind == yaml.DocumentNode && len(node.Content) > 0 {
		node = node.Content[0]
	}
	v := mappingValue(node, e.StorageURIKey)
	if v == nil || v.Kind != yaml.ScalarNode {
		return nil, ""
	}
	path := fmt.Sprintf("sinks.%s.config.%s", s.name, e.StorageURIKey)
	if strings.Contains(v.Value, "${") {
		return nil, fmt.Sprintf("%s is %s, known only at run time: grant the function of sinks.%s access to that bucket yourself (its role_name or service_account_email output).", path, v.Value, s.name)
	}
	loc, err := objstore.ParseLocation(v.Value)
	if err != nil {
		return nil, ""
	}
	want := map[bool]string{true: "s3", false: "gs"}[g.aws()]
	if loc.Scheme != want {
		if loc.Scheme == "file" {
			return nil, fmt.Sprintf("%s is a local path, which a function does not keep: use a %s:// location.", path, want)
		}
		return nil, fmt.Sprintf("%s is a %s:// location, which this %s deployment does not grant: give the function of sinks.%s credentials for it in its config.", path, loc.Scheme, g.opts.Cloud, s.name)
	}
	return &storageGrant{loc: loc}, ""
}

// objects is the location's object pattern, like prefix/* or *.
func (sg *storageGrant) objects() string {
	if sg.loc.Prefix == "" {
		return "*"
	}
	return sg.loc.Prefix + "/*"
}

// grantAWS attaches an inline policy to the function's role: objects
// under the prefix read, written and deleted, the bucket listed there.
func grantAWS(b *hclwrite.Body, s *sinkPlan, sg *storageGrant) {
	comment(b, fmt.Sprintf("Sink %s writes to s3://%s/%s: its role may read, write, delete and list there.", s.name, sg.loc.Bucket, sg.loc.Prefix))
	r := block(b, "resource", "aws_iam_role_policy", s.label+"_storage")
	list := "*"
	if sg.loc.Prefix != "" {
		list = sg.loc.Prefix + "/*"
	}
	set(r, a("name", expr(fmt.Sprintf(`"${var.name_prefix}-sink-%s-storage"`, s.short))), a("role", expr("module."+s.label+".role_name")),
		a("policy", expr(fmt.Sprintf(`jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Effect = "Allow", Action = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], Resource = "arn:aws:s3:::%s/%s" },
      { Effect = "Allow", Action = ["s3:ListBucket"], Resource = "arn:aws:s3:::%[1]s", Condition = { StringLike = { "s3:prefix" = ["%[3]s"] } } },
    ]
  })`, sg.loc.Bucket, sg.objects(), list))))
	b.AppendNewline()
}

// grantGCP gives the function's service account objectAdmin on the
// bucket (Cloud Storage grants per bucket, not per prefix).
func grantGCP(b *hclwrite.Body, s *sinkPlan, sg *storageGrant) {
	comment(b, fmt.Sprintf("Sink %s writes to gs://%s/%s: its service account may read, write, delete and list the bucket's objects.", s.name, sg.loc.Bucket, sg.loc.Prefix))
	r := block(b, "resource", "google_storage_bucket_iam_member", s.label+"_storage")
	set(r, a("bucket", str(sg.loc.Bucket)), a("role", str("roles/storage.objectAdmin")),
		a("member", expr(fmt.Sprintf(`"serviceAccount:${module.%s.service_account_email}"`, s.label))))
	b.AppendNewline()
}
