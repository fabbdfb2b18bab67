package clickhouse

import (
	"net/url"
	"regexp"
	"strings"

	"github.com/rivven/rivven-connect/shared/spec"
)

// Config is the clickhouse sink's config block: the reference's keys,
// and the column mapping, CDC and deduplication settings of this sink.
type Config struct {
	URL               string         `yaml:"url" required:"true" doc:"ClickHouse HTTP(S) endpoint, like http://localhost:8123 or https://abc123.clickhouse.cloud:8443."`
	Database          string         `yaml:"database" default:"default" doc:"Target database name."`
	Table             string         `yaml:"table" required:"true" doc:"Target table name (must already exist)."`
	Username          string         `yaml:"username" default:"default" doc:"Authentication username."`
	Password          string         `yaml:"password" secret:"true" doc:"Authentication password."`
	AccessToken       string         `yaml:"access_token" secret:"true" doc:"JWT access token for ClickHouse Cloud, sent as a bearer token (mutually exclusive with password)."`
	BatchSize         int            `yaml:"batch_size" default:"10000" min:"1" max:"1000000" doc:"Rows per batch: a long-lived runner gathers up to this many events per INSERT."`
	FlushIntervalSecs int            `yaml:"flush_interval_secs" default:"5" min:"0" doc:"Maximum seconds before a partial batch is flushed."`
	Compression       string         `yaml:"compression" default:"lz4" enum:"lz4,zstd,none" doc:"Request compression: ClickHouse's own compressed block format (LZ4 or ZSTD with CityHash checksums, the HTTP interface's decompress=1), which every server version reads; none sends plain RowBinary."`
	Validation        bool           `yaml:"validation" default:"true" doc:"Check that the table has every column the layout needs at start and after a schema error. Rows are always checked against their column types (RowBinary is typed), so false only skips the start check."`
	SkipInvalidRows   bool           `yaml:"skip_invalid_rows" default:"false" doc:"A row that does not fit its column: false sends it to the dead-letter topic with the column and reason; true drops it (counted in clickhouse.records.failed and logged). Either way the rest of the batch is written."`
	MaxRetries        int            `yaml:"max_retries" default:"3" min:"0" max:"100" doc:"Retries of an INSERT on transient failures (connection, timeout, 5xx, 429); 0 disables."`
	InitialBackoffMs  int            `yaml:"initial_backoff_ms" default:"200" min:"1" doc:"Initial retry backoff (ms), doubled per retry with jitter."`
	MaxBackoffMs      int            `yaml:"max_backoff_ms" default:"5000" min:"1" doc:"Maximum retry backoff (ms)."`
	CircuitBreaker    CircuitBreaker `yaml:"circuit_breaker" doc:"This instance's circuit breaker (the reference's); the engine's sinks.<name>.circuit_breaker, shared by all instances, applies as for every sink."`
	Layout            string         `yaml:"layout" default:"auto" enum:"auto,columns,envelope" doc:"columns: each event's row (after image; before image for deletes) fills the table's columns by name; envelope: the reference's table (event_type, stream, namespace, timestamp, data, metadata, _ingested_at as Strings); auto: envelope when the table has exactly the envelope's columns, else columns."`
	SignColumn        string         `yaml:"sign_column" doc:"CollapsingMergeTree: an Int8 column set to 1 for rows written and -1 for the row a delete (or the before image of an update) cancels. Needs full before images from the source (REPLICA IDENTITY FULL, binlog_row_image FULL)."`
	VersionColumn     string         `yaml:"version_column" doc:"ReplacingMergeTree(version) or VersionedCollapsingMergeTree: filled, when the row does not carry it, with the event's sequence or else its timestamp in nanoseconds, so that the last change of a key wins."`
	DeletedColumn     string         `yaml:"deleted_column" doc:"ReplacingMergeTree(version, is_deleted) (ClickHouse 23.2+): a UInt8 column set to 1 for deletes (their before image) and 0 otherwise."`
	Deletes           string         `yaml:"deletes" default:"auto" enum:"auto,skip,write" doc:"Delete events: write writes their before image (with sign -1 or is_deleted 1); skip drops them; auto writes them when sign_column or deleted_column is set, and with the envelope layout, else skips them."`
	DedupToken        string         `yaml:"dedup_token" default:"auto" enum:"auto,on,off" doc:"Send insert_deduplication_token derived from the batch's delivery ids, so that a redelivered batch is not written twice: auto when the server has the setting (22.2+) and the batch has delivery ids; on always (fails on older servers); off never. Older servers deduplicate identical blocks on Replicated tables by themselves."`
}

// CircuitBreaker is the reference's per-connector breaker.
type CircuitBreaker struct {
	Enabled          bool `yaml:"enabled" default:"true" doc:"Enable the circuit breaker."`
	FailureThreshold int  `yaml:"failure_threshold" default:"5" min:"1" max:"100" doc:"Consecutive failed batches that open the circuit."`
	ResetTimeoutSecs int  `yaml:"reset_timeout_secs" default:"30" min:"1" max:"3600" doc:"Seconds the circuit stays open before a probe batch."`
	SuccessThreshold int  `yaml:"success_threshold" default:"2" min:"1" max:"10" doc:"Successful probes that close the circuit."`
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate checks what the tags cannot express.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		ps = append(ps, spec.Problem{Path: "url", Message: "must be an http:// or https:// URL with a host"})
	}
	if !identRE.MatchString(c.Database) {
		ps = append(ps, spec.Problem{Path: "database", Message: "must be a plain identifier (letters, digits, underscore)"})
	}
	if !identRE.MatchString(c.Table) {
		ps = append(ps, spec.Problem{Path: "table", Message: "must be a plain identifier (letters, digits, underscore)"})
	}
	if c.Password != "" && c.AccessToken != "" {
		ps = append(ps, spec.Problem{Path: "access_token", Message: "password and access_token are mutually exclusive"})
	}
	if c.MaxBackoffMs < c.InitialBackoffMs {
		ps = append(ps, spec.Problem{Path: "max_backoff_ms", Message: "must be at least initial_backoff_ms"})
	}
	for _, f := range []struct{ path, v string }{{"sign_column", c.SignColumn}, {"version_column", c.VersionColumn}, {"deleted_column", c.DeletedColumn}} {
		if f.v != "" && !identRE.MatchString(f.v) {
			ps = append(ps, spec.Problem{Path: f.path, Message: "must be a plain identifier"})
		}
	}
	if c.SignColumn != "" && c.DeletedColumn != "" {
		ps = append(ps, spec.Problem{Path: "deleted_column", Message: "sign_column (CollapsingMergeTree) and deleted_column (ReplacingMergeTree) exclude each other"})
	}
	if c.Layout == "envelope" && (c.SignColumn != "" || c.DeletedColumn != "" || c.VersionColumn != "") {
		ps = append(ps, spec.Problem{Path: "layout", Message: "the envelope layout has no sign, version or deleted column"})
	}
	_ = strings.TrimSpace
	return ps
}
