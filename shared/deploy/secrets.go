package deploy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/secrets"
	"github.com/rivven/rivven-connect/shared/spec"
)

// componentSecrets lists the cloud secret references of one source or
// sink: its config and its transforms', and those of the settings and
// broker blocks every component reads (the Redis URL) — what its function
// or service reads at start, and so what its identity is granted, no
// more.
func componentSecrets(p *config.Pipeline, cfg *yaml.Node, path string, ts config.Transforms) []secrets.Ref {
	var out []secrets.Ref
	add := func(n *yaml.Node, p string) {
		for _, l := range secrets.Refs(n, p) {
			if l.Scheme != "vault" && !strings.Contains(l.Path, "${") {
				out = append(out, l.Ref)
			}
		}
	}
	for _, key := range []string{"settings", "broker"} {
		if n := spec.Find(p.Root, key); n != nil {
			add(n, key)
		}
	}
	add(cfg, path+".config")
	for _, t := range ts {
		add(&t.Config, t.Path+".config")
	}
	return out
}

// secretResources returns the IAM resources of refs on the plan's cloud,
// sorted and distinct: AWS Secrets Manager ARNs (a name becomes the ARN
// in this account and region with the -?????? suffix Secrets Manager
// appends), Secret Manager secret ids projects/<p>/secrets/<s> (without
// the version; a short name is in var.project).
func (g *gen) secretResources(refs []secrets.Ref) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range refs {
		var res string
		switch {
		case g.aws() && r.Scheme == "aws-sm":
			if strings.HasPrefix(r.Path, "arn:") {
				res = r.Path
			} else {
				res = fmt.Sprintf("arn:${data.aws_partition.current.partition}:secretsmanager:${var.region}:${data.aws_caller_identity.current.account_id}:secret:%s-??????", r.Path)
			}
		case !g.aws() && r.Scheme == "gcp-sm":
			p := r.Path
			if i := strings.Index(p, "/versions/"); i >= 0 {
				p = p[:i]
			}
			if !strings.HasPrefix(p, "projects/") {
				p = "projects/${var.project}/secrets/" + p
			}
			res = p
		default:
			continue
		}
		if !seen[res] {
			seen[res] = true
			out = append(out, res)
		}
	}
	sort.Strings(out)
	return out
}

// secretList is the HCL list of secretResources.
func (g *gen) secretList(refs []secrets.Ref) (hclwrite.Tokens, bool) {
	res := g.secretResources(refs)
	if len(res) == 0 {
		return nil, false
	}
	items := make([]hclwrite.Tokens, len(res))
	for i, r := range res {
		items[i] = expr(`"` + r + `"`)
	}
	return list(items...), true
}

// needsAccountData reports whether an AWS secret ARN is built from the
// account and partition (a reference by name).
func (g *gen) needsAccountData() bool {
	if !g.aws() {
		return false
	}
	for _, s := range g.pl.sources {
		for _, r := range g.secretResources(s.secrets) {
			if strings.Contains(r, "data.aws_") {
				return true
			}
		}
	}
	for _, s := range g.pl.sinks {
		for _, r := range g.secretResources(s.secrets) {
			if strings.Contains(r, "data.aws_") {
				return true
			}
		}
	}
	return false
}
