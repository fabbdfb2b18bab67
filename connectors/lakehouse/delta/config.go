package deltalake

import (
	"fmt"
	"strings"

	"github.com/rivven/rivven-connect/shared/objstore"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Config is the delta-lake sink's config block.
type Config struct {
	TableURI             string                 `yaml:"table_uri" required:"true" doc:"Delta table location: a local path or file:///path, s3://bucket/path, gs://bucket/path or az://container/path (abfss://container@account.dfs.core.windows.net/path names the container too). The table's _delta_log folder lives directly under it."`
	AutoCreateTable      bool                   `yaml:"auto_create_table" default:"true" doc:"Create the table (its first commit: protocol and metaData from the first batch's rows) when the location holds none; false fails the batch while the table is missing."`
	BatchSize            int                    `yaml:"batch_size" default:"10000" min:"1" doc:"Records per batch: a long-lived runner gathers up to this many events for one commit."`
	FlushIntervalSecs    int                    `yaml:"flush_interval_secs" default:"60" min:"0" doc:"Max seconds between flushes: a partial batch is committed once its first event waited this long. Gathered events stay uncommitted on the topic until their Delta commit succeeded. 0 commits whatever one fetch returns."`
	Compression          string                 `yaml:"compression" default:"snappy" enum:"snappy,gzip,lz4,zstd,none" doc:"Parquet compression codec of data files (lz4 is written as LZ4_RAW, the codec current readers expect; none is uncompressed)."`
	PartitionColumns     []string               `yaml:"partition_columns" doc:"Hive-style partition columns of a table this sink creates: each data file holds one combination of their values and lives under col=value/ folders; the values are kept in the log, not in the files. An existing table keeps its own; naming different ones is an error."`
	TransactionRetention string                 `yaml:"transaction_retention" doc:"Table property delta.setTransactionRetentionDuration of a table this sink creates, like interval 7 days: txn actions (the marks by which redelivered batches are recognised) older than this leave the table state and its checkpoints instead of accumulating, and a redelivery later than this is written again. Empty keeps them (Delta's default). An existing table's own property applies either way."`
	MaxCommitRetries     int                    `yaml:"max_commit_retries" default:"3" min:"0" doc:"Commit attempts after losing a race for the next log version to another writer, each after re-reading the log, checking the winner's commits for conflicts, and an exponential backoff."`
	S3                   *objstore.S3Options    `yaml:"s3" doc:"S3 access of s3:// tables (and S3-compatible stores that support conditional writes: MinIO); without it, the AWS default credential chain."`
	GCS                  *objstore.GCSOptions   `yaml:"gcs" doc:"Google Cloud Storage access of gs:// tables; without it, Application Default Credentials."`
	Azure                *objstore.AzureOptions `yaml:"azure" doc:"Azure Blob Storage access of az:// tables (required for them: the account at least)."`
}

// Validate checks what the tags cannot express.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	loc, err := objstore.ParseLocation(c.TableURI)
	if err != nil {
		ps = append(ps, spec.Problem{Path: "table_uri", Message: err.Error()})
	}
	blocks := []struct {
		name, scheme string
		set          bool
	}{{"s3", "s3", c.S3 != nil}, {"gcs", "gs", c.GCS != nil}, {"azure", "az", c.Azure != nil}}
	for _, b := range blocks {
		if b.set && err == nil && loc.Scheme != b.scheme {
			ps = append(ps, spec.Problem{Path: b.name, Message: fmt.Sprintf("%s settings are set but table_uri is not a %s:// location", b.name, b.scheme)})
		}
	}
	if err == nil && loc.Scheme == "az" {
		switch {
		case c.Azure == nil:
			ps = append(ps, spec.Problem{Path: "azure", Message: "required for az:// tables: account (and a credential) or connection_string"})
		case c.Azure.Account == "" && c.Azure.ConnectionString == "":
			ps = append(ps, spec.Problem{Path: "azure.account", Message: "required unless connection_string names the account"})
		}
	}
	if c.TransactionRetention != "" {
		if _, err := parseInterval(c.TransactionRetention); err != nil {
			ps = append(ps, spec.Problem{Path: "transaction_retention", Message: err.Error()})
		}
	}
	seen := map[string]bool{}
	for i, col := range c.PartitionColumns {
		key := strings.ToLower(col)
		switch {
		case strings.TrimSpace(col) == "":
			ps = append(ps, spec.Problem{Path: fmt.Sprintf("partition_columns[%d]", i), Message: "empty column name"})
		case seen[key]:
			ps = append(ps, spec.Problem{Path: fmt.Sprintf("partition_columns[%d]", i), Message: fmt.Sprintf("%q is named twice (Delta column names are case-insensitive)", col)})
		}
		seen[key] = true
	}
	return ps
}
