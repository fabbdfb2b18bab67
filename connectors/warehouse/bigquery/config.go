package bigquery

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"

	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Config is the bigquery sink's config block. The reference names
// bigquery in its Warehouse category without a table of keys; these
// follow its Snowflake and Databricks sections (batch_size,
// flush_interval_secs, request_timeout_secs, the retry and
// circuit_breaker blocks).
type Config struct {
	ProjectID         string                   `yaml:"project_id" required:"true" doc:"GCP project of the table (and the project billed for the writes)."`
	Dataset           string                   `yaml:"dataset" required:"true" doc:"Dataset of the table."`
	Table             string                   `yaml:"table" required:"true" doc:"Target table."`
	Delivery          string                   `yaml:"delivery" default:"at_least_once" enum:"at_least_once,exactly_once" doc:"at_least_once appends to the table's default stream (a redelivered batch is written again); exactly_once appends to a committed stream at explicit offsets, the stream and the offset of the last batch kept in the engine's state store, so a batch redelivered after it was written is recognized and not written twice (see README)."`
	CreateTable       bool                     `yaml:"create_table" default:"false" doc:"Create the table when it does not exist, its columns inferred from the first batch (boolean BOOL, integer INT64, other numbers FLOAT64, string STRING, object and array JSON; all NULLABLE)."`
	Deletes           string                   `yaml:"deletes" default:"skip" enum:"skip,write" doc:"Delete events: skip drops them; write appends their before image (with operation_column set to delete)."`
	OperationColumn   string                   `yaml:"operation_column" doc:"A STRING column set to each row's change (insert, update, delete, snapshot-read, record); empty: none."`
	BatchSize         int                      `yaml:"batch_size" default:"1000" min:"1" max:"100000" doc:"Rows per append: a long-lived runner gathers up to this many events per AppendRows request (requests over 9 MB are split)."`
	FlushIntervalSecs int                      `yaml:"flush_interval_secs" default:"5" min:"0" doc:"Maximum seconds before a partial batch is flushed."`
	RequestTimeout    int                      `yaml:"request_timeout_secs" default:"30" min:"1" doc:"Timeout of one append (and of each table metadata request)."`
	Retry             Retry                    `yaml:"retry" doc:"Retries of an append on transient failures (UNAVAILABLE, INTERNAL, ABORTED, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED), exponential backoff with jitter."`
	CircuitBreaker    resilience.CircuitConfig `yaml:"circuit_breaker" doc:"This instance's circuit breaker, as the other warehouse sinks': while open, batches fail at once without a request; the engine's sinks.<name>.circuit_breaker, shared by all instances, applies as for every sink."`
	CredentialsPath   string                   `yaml:"credentials_path" doc:"Service-account JSON key file; without it and credentials_json the Google default chain is used (GOOGLE_APPLICATION_CREDENTIALS, gcloud, the metadata server, workload identity)."`
	CredentialsJSON   string                   `yaml:"credentials_json" secret:"true" doc:"Service-account JSON key itself (from a secret store); never logged."`
	APIEndpoint       string                   `yaml:"api_endpoint" doc:"BigQuery REST API base URL instead of Google's (emulators, tests), like http://127.0.0.1:9050/bigquery/v2/; without credentials its requests are unauthenticated."`
	StorageEndpoint   string                   `yaml:"storage_endpoint" doc:"Storage Write API host:port instead of Google's (emulators, tests); without credentials the connection is plaintext and unauthenticated."`
}

// Retry is the reference's retry block (Snowflake's keys and defaults).
type Retry struct {
	MaxRetries        int     `yaml:"max_retries" default:"3" min:"0" max:"100" doc:"Maximum retry attempts for transient errors."`
	InitialBackoffMs  int     `yaml:"initial_backoff_ms" default:"1000" min:"1" doc:"Initial backoff (ms)."`
	MaxBackoffMs      int     `yaml:"max_backoff_ms" default:"30000" min:"1" doc:"Maximum backoff (ms)."`
	BackoffMultiplier float64 `yaml:"backoff_multiplier" default:"2.0" doc:"Exponential backoff multiplier."`
	JitterFactor      float64 `yaml:"jitter_factor" default:"0.1" doc:"Randomization factor (0.0-1.0) of each backoff."`
}

// BigQuery's naming rules: project IDs, dataset names (letters, digits,
// underscore), table names (Unicode letters, marks, numbers, connectors,
// dashes, spaces; we accept the common subset).
var (
	projectRE = regexp.MustCompile(`^[a-z][a-z0-9.:-]{4,61}[a-z0-9]$`)
	datasetRE = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
	tableRE   = regexp.MustCompile(`^[\p{L}\p{M}\p{N}\p{Pc}\p{Pd} ]+$`)
	columnRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,299}$`)
)

// Validate checks what the tags cannot express.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	if c.ProjectID != "" && !projectRE.MatchString(c.ProjectID) {
		ps = append(ps, spec.Problem{Path: "project_id", Message: "not a GCP project ID (6-63 lowercase letters, digits, hyphens; may have a domain: prefix)"})
	}
	if c.Dataset != "" && !datasetRE.MatchString(c.Dataset) {
		ps = append(ps, spec.Problem{Path: "dataset", Message: "a dataset name has only letters, digits and underscores"})
	}
	if c.Table != "" && !tableRE.MatchString(c.Table) {
		ps = append(ps, spec.Problem{Path: "table", Message: "not a BigQuery table name (letters, digits, underscores, dashes, spaces)"})
	}
	if c.OperationColumn != "" && !columnRE.MatchString(c.OperationColumn) {
		ps = append(ps, spec.Problem{Path: "operation_column", Message: "not a BigQuery column name (letter or underscore, then letters, digits, underscores)"})
	}
	if c.Retry.MaxBackoffMs < c.Retry.InitialBackoffMs {
		ps = append(ps, spec.Problem{Path: "retry.max_backoff_ms", Message: "must be at least retry.initial_backoff_ms"})
	}
	if c.Retry.BackoffMultiplier < 1 {
		ps = append(ps, spec.Problem{Path: "retry.backoff_multiplier", Message: "must be at least 1.0"})
	}
	if c.Retry.JitterFactor < 0 || c.Retry.JitterFactor > 1 {
		ps = append(ps, spec.Problem{Path: "retry.jitter_factor", Message: "must be between 0.0 and 1.0"})
	}
	if c.CredentialsPath != "" && c.CredentialsJSON != "" {
		ps = append(ps, spec.Problem{Path: "credentials_json", Message: "credentials_path and credentials_json exclude each other"})
	}
	if c.CredentialsJSON != "" {
		// The message never quotes the value: it is a secret.
		var head struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal([]byte(c.CredentialsJSON), &head); err != nil {
			ps = append(ps, spec.Problem{Path: "credentials_json", Message: "is not a JSON key"})
		} else if head.Type != "service_account" {
			ps = append(ps, spec.Problem{Path: "credentials_json", Message: fmt.Sprintf("key type %q: a service_account key is expected", head.Type)})
		}
	}
	if c.APIEndpoint != "" {
		if u, err := url.Parse(c.APIEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps = append(ps, spec.Problem{Path: "api_endpoint", Message: "must be an http:// or https:// URL with a host"})
		}
	}
	return ps
}
