package snowflake

import (
	"net/url"
	"regexp"
	"strings"

	"github.com/rivven/rivven-connect/shared/spec"
)

// Config is the snowflake sink's config block: the reference's keys with
// its defaults, and what this sink adds (a private key given inline for
// secret stores, the pipe, channel naming, CDC handling, table creation).
type Config struct {
	Account        string `yaml:"account" required:"true" doc:"Snowflake account identifier (e.g. myorg-account123, or a locator such as xy12345.us-east-1). The JWT names it uppercased, without a region suffix."`
	User           string `yaml:"user" required:"true" doc:"Snowflake user the public key is registered to (RSA_PUBLIC_KEY)."`
	PrivateKeyPath string `yaml:"private_key_path" doc:"Path to the RSA private key, unencrypted PKCS#8 PEM (-----BEGIN PRIVATE KEY-----). Required unless private_key is set."`
	PrivateKey     string `yaml:"private_key" secret:"true" doc:"The same key's PEM text, for a secret reference or ${VAR} (functions have no key file). Exclusive with private_key_path."`
	Role           string `yaml:"role" doc:"Role to assume after authentication: the scoped token is asked for with scope session:role:ROLE, and SQL (check, create_table) runs in it (the driver session's role)."`
	Database       string `yaml:"database" required:"true" doc:"Target database."`
	Schema         string `yaml:"schema" required:"true" doc:"Target schema."`
	Table          string `yaml:"table" required:"true" doc:"Target table."`
	Warehouse      string `yaml:"warehouse" doc:"Compute warehouse for the SQL this sink runs (check, create_table); streaming itself needs none."`

	BatchSize          int `yaml:"batch_size" default:"1000" min:"1" max:"1000000" doc:"Rows per Snowpipe Streaming append request (a request also stays under the service's 4 MB limit); long-lived runners gather this many events per Write."`
	FlushIntervalSecs  int `yaml:"flush_interval_secs" default:"1" min:"0" doc:"Maximum seconds between flushes of a partial batch."`
	RequestTimeoutSecs int `yaml:"request_timeout_secs" default:"30" min:"1" max:"3600" doc:"HTTP request timeout."`

	CompressionEnabled        bool `yaml:"compression_enabled" default:"true" doc:"Enable gzip compression (Content-Encoding: gzip) for large payloads."`
	CompressionThresholdBytes int  `yaml:"compression_threshold_bytes" default:"8192" min:"0" doc:"Minimum payload size to trigger compression."`

	Retry          Retry          `yaml:"retry" doc:"Retries of transient failures (408, 429, 5xx, network errors) with exponential backoff and jitter; a Retry-After from the service wins. 400, 401, 403 and 404 are not retried."`
	CircuitBreaker CircuitBreaker `yaml:"circuit_breaker" doc:"This instance's circuit breaker (the reference's); the engine's sinks.<name>.circuit_breaker, shared by all instances, applies as for every sink."`

	URL               string `yaml:"url" doc:"Account URL; default https://ACCOUNT.snowflakecomputing.com (set it for private connectivity). The ingest host is discovered from it (GET /v2/streaming/hostname)."`
	Pipe              string `yaml:"pipe" doc:"Streaming pipe; default the table's managed default pipe TABLE-STREAMING."`
	ChannelPrefix     string `yaml:"channel_prefix" default:"rivven" doc:"Channel names are PREFIX_TOPIC_PARTITION: one channel per topic partition, whose committed offset token is the partition's offset. Two pipelines writing one pipe need different prefixes."`
	CommitTimeoutSecs int    `yaml:"commit_timeout_secs" default:"60" min:"1" max:"3600" doc:"How long a Write waits for the channel's committed offset token to reach its last row; a Write returns only then, so the trigger acknowledges only committed rows."`
	ColumnCase        string `yaml:"column_case" default:"upper" enum:"upper,as_is" doc:"Row keys as column names: upper uppercases them (Snowflake's unquoted identifiers); as_is keeps them (quoted, case-sensitive columns)."`
	OpColumn          string `yaml:"op_column" doc:"A column filled with each change's operation (c, u, d, r); with it deletes are written (their before image), so that the table keeps the change history."`
	Deletes           string `yaml:"deletes" default:"auto" enum:"auto,skip,write" doc:"Delete events: write writes their before image; skip leaves them out (counted in snowflake.rows.skipped_committed); auto writes them when op_column is set, else skips them."`
	CreateTable       bool   `yaml:"create_table" default:"false" doc:"Create the table when it is missing, with columns from the first batch's rows (CREATE TABLE IF NOT EXISTS through the gosnowflake driver, in role; the role needs CREATE TABLE on the schema)."`
}

// Retry is the reference's retry block.
type Retry struct {
	MaxRetries        int     `yaml:"max_retries" default:"3" min:"0" max:"100" doc:"Maximum retry attempts for transient errors."`
	InitialBackoffMs  int     `yaml:"initial_backoff_ms" default:"1000" min:"1" doc:"Initial backoff duration (ms)."`
	MaxBackoffMs      int     `yaml:"max_backoff_ms" default:"30000" min:"1" doc:"Maximum backoff duration (ms)."`
	BackoffMultiplier float64 `yaml:"backoff_multiplier" default:"2.0" min:"1" doc:"Exponential backoff multiplier."`
	JitterFactor      float64 `yaml:"jitter_factor" default:"0.1" min:"0" max:"1" doc:"Randomization factor (0.0-1.0) to prevent thundering herd."`
}

// CircuitBreaker is the reference's per-connector breaker.
type CircuitBreaker struct {
	Enabled          bool `yaml:"enabled" default:"true" doc:"Enable circuit breaker pattern."`
	FailureThreshold int  `yaml:"failure_threshold" default:"5" min:"1" max:"100" doc:"Consecutive failures before circuit opens."`
	ResetTimeoutSecs int  `yaml:"reset_timeout_secs" default:"30" min:"1" max:"3600" doc:"Seconds before allowing test request."`
	SuccessThreshold int  `yaml:"success_threshold" default:"2" min:"1" max:"10" doc:"Successes needed to close circuit."`
}

// identRE is an unquoted Snowflake identifier; names outside it are
// quoted in SQL and sent as they are in URLs.
var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*$`)

// objectRE is what this sink accepts as a database, schema, table or pipe
// name: it goes into URL paths and (quoted) into SQL.
var objectRE = regexp.MustCompile(`^[A-Za-z0-9_$-]+$`)

// Validate checks what the tags cannot express.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	switch {
	case c.PrivateKeyPath == "" && c.PrivateKey == "":
		ps = append(ps, spec.Problem{Path: "private_key_path", Message: "required: the path of the PKCS#8 key (or private_key with its PEM text)"})
	case c.PrivateKeyPath != "" && c.PrivateKey != "":
		ps = append(ps, spec.Problem{Path: "private_key", Message: "private_key and private_key_path exclude each other"})
	}
	if strings.ContainsAny(c.Account, "/:@ ") || c.Account == "" {
		ps = append(ps, spec.Problem{Path: "account", Message: "must be an account identifier such as myorg-account123 (not a URL; set url for that)"})
	}
	for _, f := range []struct{ path, v string }{{"database", c.Database}, {"schema", c.Schema}, {"table", c.Table}, {"pipe", c.Pipe}} {
		if f.v != "" && !objectRE.MatchString(f.v) {
			ps = append(ps, spec.Problem{Path: f.path, Message: "must be a name of letters, digits, _, $ or -"})
		}
	}
	if c.ChannelPrefix == "" || !objectRE.MatchString(c.ChannelPrefix) {
		ps = append(ps, spec.Problem{Path: "channel_prefix", Message: "must be non-empty letters, digits, _, $ or -"})
	}
	if c.OpColumn != "" && !identRE.MatchString(c.OpColumn) {
		ps = append(ps, spec.Problem{Path: "op_column", Message: "must be a plain identifier"})
	}
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps = append(ps, spec.Problem{Path: "url", Message: "must be an https:// URL with a host"})
		}
	}
	if c.Retry.MaxBackoffMs < c.Retry.InitialBackoffMs {
		ps = append(ps, spec.Problem{Path: "retry.max_backoff_ms", Message: "must be at least retry.initial_backoff_ms"})
	}
	return ps
}

// pipe is the pipe the channels are opened on.
func (c *Config) pipe() string {
	if c.Pipe != "" {
		return c.Pipe
	}
	return strings.ToUpper(c.Table) + "-STREAMING"
}

// baseURL is the account URL.
func (c *Config) baseURL() string {
	if c.URL != "" {
		return strings.TrimRight(c.URL, "/")
	}
	return "https://" + strings.ToLower(strings.ReplaceAll(c.Account, "_", "-")) + ".snowflakecomputing.com"
}
