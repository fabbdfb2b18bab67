package redshift

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/rivven/rivven-connect/shared/objstore"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Modes and upsert methods.
const (
	ModeInsert = "insert"
	ModeUpsert = "upsert"

	UpsertMerge        = "merge"
	UpsertDeleteInsert = "delete_insert"
)

// Config is the redshift sink's config block, after the warehouse sinks'
// conventions (batch_size, flush_interval_secs, retries, circuit_breaker).
type Config struct {
	URL               string                   `yaml:"url" required:"true" secret:"true" doc:"Cluster or workgroup endpoint as a PostgreSQL URL: postgres://user:password@examplecluster.abc123.us-west-2.redshift.amazonaws.com:5439/dev?sslmode=require (pgx; libpq parameters). A secret because it usually carries the password."`
	Table             string                   `yaml:"table" required:"true" doc:"Target table, table or schema.table; it must exist."`
	Layout            string                   `yaml:"layout" default:"columns" enum:"columns,envelope" doc:"columns: each event's row (the after image; for deletes the before image's key) fills the table's columns by name; envelope: the reference's warehouse table (event_type, stream, namespace, timestamp, data, metadata, _ingested_at), insert mode only."`
	Mode              string                   `yaml:"mode" default:"insert" enum:"insert,upsert" doc:"insert appends every row; upsert writes each key's last row of the batch over the table's (merge or delete+insert, one transaction), so a redelivered batch leaves the table as it was."`
	UpsertMethod      string                   `yaml:"upsert_method" default:"merge" enum:"merge,delete_insert" doc:"How upsert writes the staged rows: merge (MERGE INTO … USING stage, Redshift and PostgreSQL 15+) or delete_insert (DELETE … USING stage, then INSERT … SELECT: Redshift's classic staging-table pattern). Both in one transaction with the stage's load."`
	PKFields          []string                 `yaml:"pk_fields" doc:"Key columns for upsert and deletes; default: the fields of the event's key, else the table's PRIMARY KEY constraint (informational on Redshift, but read)."`
	Delete            DeleteOpt                `yaml:"delete" doc:"Deletes of CDC events."`
	BatchSize         int                      `yaml:"batch_size" default:"10000" min:"1" max:"1000000" doc:"Rows per batch: a long-lived runner gathers up to this many events per write."`
	FlushIntervalSecs int                      `yaml:"flush_interval_secs" default:"5" min:"0" doc:"Maximum seconds before a partial batch is written."`
	CopyThreshold     int                      `yaml:"copy_threshold" default:"5000" min:"0" doc:"Batches with at least this many rows are staged as a gzip JSON Lines file in S3 (s3.bucket) and loaded with COPY … FORMAT AS JSON 'auto'; smaller ones go as multi-row INSERTs. 0, or no s3 block, never COPYs."`
	IAMRole           string                   `yaml:"iam_role" doc:"ARN of the IAM role the cluster assumes to read the staged files (COPY's IAM_ROLE), like arn:aws:iam::123456789012:role/RedshiftCopy; or default for the cluster's default role. Required with s3."`
	S3                *Staging                 `yaml:"s3" doc:"Where COPY batches are staged. The writer's credentials (default chain or static keys) only PUT and DELETE; the cluster reads with iam_role."`
	MaxRetries        int                      `yaml:"max_retries" default:"3" min:"0" max:"100" doc:"Retries of a batch on transient failures (connection lost, serialization conflict, server shutting down); 0 disables."`
	InitialBackoffMs  int                      `yaml:"initial_backoff_ms" default:"200" min:"1" doc:"Initial retry backoff (ms), doubled per retry with jitter."`
	MaxBackoffMs      int                      `yaml:"max_backoff_ms" default:"5000" min:"1" doc:"Maximum retry backoff (ms)."`
	CircuitBreaker    resilience.CircuitConfig `yaml:"circuit_breaker" doc:"This instance's circuit breaker, as the other warehouse sinks'; the engine's sinks.<name>.circuit_breaker, shared by all instances, applies as for every sink."`
}

// DeleteOpt is sinks.<name>.config.delete.
type DeleteOpt struct {
	Enabled bool `yaml:"enabled" default:"false" doc:"Apply delete events as deletes by key; off: deletes are skipped (counted in redshift.events.skipped)."`
}

// Staging is the s3 block: the bucket COPY reads from.
type Staging struct {
	Bucket             string `yaml:"bucket" required:"true" doc:"Bucket the batches are staged in; in the cluster's region, or set region."`
	Prefix             string `yaml:"prefix" default:"rivven/redshift" doc:"Key prefix of the staged files; each is <prefix>/<table>/<batch>.jsonl.gz."`
	KeepFiles          bool   `yaml:"keep_files" default:"false" doc:"Keep each staged file after its COPY committed (by default it is deleted then; a lifecycle rule on the prefix catches files of failed batches)."`
	objstore.S3Options `yaml:",inline"`
}

var (
	identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*$`)
	arnRE   = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$`)
)

// Validate checks what the tags cannot express.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	add := func(path, f string, a ...any) {
		ps = append(ps, spec.Problem{Path: path, Message: fmt.Sprintf(f, a...)})
	}
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql" && u.Scheme != "redshift") || u.Host == "" {
		// url.Parse's error quotes the URL, password included: not shown.
		add("url", "must be a postgres://user:password@host:5439/db URL")
	}
	parts := strings.Split(c.Table, ".")
	if len(parts) > 2 {
		add("table", "must be table or schema.table")
	}
	for _, p := range parts {
		if !identRE.MatchString(p) {
			add("table", "%q: each part must be a plain identifier (letters, digits, _ and $)", c.Table)
			break
		}
	}
	for i, f := range c.PKFields {
		if !identRE.MatchString(f) {
			add(spec.Index("pk_fields", i), "%q is not a plain identifier", f)
		}
	}
	if c.Layout == "envelope" && (c.Mode != ModeInsert || c.Delete.Enabled) {
		add("layout", "the envelope layout appends rows: it needs mode insert and delete.enabled false")
	}
	if c.MaxBackoffMs < c.InitialBackoffMs {
		add("max_backoff_ms", "must be at least initial_backoff_ms")
	}
	if c.S3 != nil {
		if c.IAMRole == "" {
			add("iam_role", "required with s3: the role the cluster assumes to read the staged files")
		}
		if strings.Trim(c.S3.Prefix, "/") != c.S3.Prefix && strings.Trim(c.S3.Prefix, "/") == "" {
			add("s3.prefix", "must not be only slashes")
		}
		for _, p := range c.S3.S3Options.Validate() {
			ps = append(ps, spec.Problem{Path: "s3." + p.Path, Message: p.Message})
		}
	}
	if c.IAMRole != "" && c.IAMRole != "default" && !arnRE.MatchString(c.IAMRole) {
		add("iam_role", "must be a role ARN (arn:aws:iam::<account>:role/<name>) or default")
	}
	return ps
}
