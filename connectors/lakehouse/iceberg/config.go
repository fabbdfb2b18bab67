package iceberg

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	ice "github.com/apache/iceberg-go"
	iceio "github.com/apache/iceberg-go/io"

	"github.com/rivven/rivven-connect/shared/objstore"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Catalog types.
const (
	CatalogREST   = "rest"
	CatalogSQL    = "sql"
	CatalogMemory = "memory"
)

// Commit modes.
const (
	CommitAppend    = "append"
	CommitOverwrite = "overwrite"
	CommitUpsert    = "upsert"
)

// Schema evolution modes.
const (
	EvolveStrict     = "strict"
	EvolveAddColumns = "add_columns"
	EvolveFull       = "full"
)

// Partitioning strategies.
const (
	PartitionNone     = "none"
	PartitionIdentity = "identity"
	PartitionBucket   = "bucket"
	PartitionTime     = "time"
)

// Config is the iceberg sink's config block.
type Config struct {
	Catalog           CatalogConfig          `yaml:"catalog" required:"true" doc:"Where the table's metadata pointer lives."`
	Namespace         string                 `yaml:"namespace" required:"true" doc:"Iceberg namespace (database); dots separate levels, like analytics or lake.raw. Created when missing."`
	Table             string                 `yaml:"table" required:"true" doc:"Table name. Created from the first batch's rows when missing."`
	BatchSize         int                    `yaml:"batch_size" default:"10000" min:"1" doc:"Events per batch: a long-lived runner gathers up to this many events for one snapshot."`
	FlushIntervalSecs int                    `yaml:"flush_interval_secs" default:"60" min:"0" doc:"Max wait before a long-lived runner commits a partial batch. Gathered events stay uncommitted on the topic until their snapshot is committed. 0 commits whatever one fetch returns."`
	TargetFileSizeMB  int                    `yaml:"target_file_size_mb" default:"128" min:"1" doc:"Target Parquet data file size (the table property write.target-file-size-bytes): a batch larger than this is rolled into several files of one snapshot."`
	Compression       string                 `yaml:"compression" default:"snappy" enum:"none,snappy,gzip,lz4,zstd,brotli" doc:"Parquet compression codec of data files (the table property write.parquet.compression-codec; none is uncompressed)."`
	Partitioning      string                 `yaml:"partitioning" default:"none" enum:"none,identity,bucket,time" doc:"Partition spec of a table this sink creates: none, identity (by the values of partition_columns), bucket (murmur3 hash of partition_columns into partition_buckets buckets) or time (partition_time_unit of the one timestamp or date column in partition_columns). An existing table keeps its own spec."`
	PartitionColumns  []string               `yaml:"partition_columns" doc:"Columns the partitioning applies to (identity, bucket: one or more; time: exactly one)."`
	PartitionBuckets  int                    `yaml:"partition_buckets" default:"16" min:"1" doc:"Number of buckets of partitioning bucket."`
	PartitionTimeUnit string                 `yaml:"partition_time_unit" default:"day" enum:"year,month,day,hour" doc:"Transform of partitioning time."`
	CommitMode        string                 `yaml:"commit_mode" default:"append" enum:"append,overwrite,upsert" doc:"How a batch is committed: append adds its rows; overwrite replaces the table's rows with the batch's; upsert writes, in one snapshot, an equality delete of every key in the batch and the batch's last row of each key (a CDC delete is only the equality delete), keyed by the table's identifier fields (a table this sink creates gets identifier_columns as its identifier fields; the table is format version 2)."`
	IdentifierColumns []string               `yaml:"identifier_columns" doc:"Key columns of commit_mode upsert: the identifier fields of a table this sink creates (required columns then). An existing table keeps its identifier fields; naming other ones fails the batch."`
	SchemaEvolution   string                 `yaml:"schema_evolution" default:"add_columns" enum:"strict,add_columns,full" doc:"Fields not in the table: strict dead-letters their events; add_columns adds them as optional columns; full also promotes int to long and float to double when a value needs it. Changes Iceberg forbids (long to double, string to number) dead-letter the event, naming the column."`
	S3                *S3Options             `yaml:"s3" doc:"S3 (and S3-compatible: MinIO) access of tables stored at s3:// locations; without it, the AWS default credential chain. The catalog's own storage settings (a REST catalog's config) apply first, these over them."`
	GCS               *objstore.GCSOptions   `yaml:"gcs" doc:"Google Cloud Storage access of tables stored at gs:// locations (iceberg-go's gcs.* properties); without it, Application Default Credentials."`
	Azure             *objstore.AzureOptions `yaml:"azure" doc:"Azure Blob Storage / ADLS Gen2 access of tables stored at abfss://container@account.dfs.core.windows.net/path (or abfs, wasb, wasbs) locations (iceberg-go's adls.* properties); without it, the Azure default credential chain."`
	MaxCommitRetries  int                    `yaml:"max_commit_retries" default:"10" min:"0" doc:"Commit attempts after a conflict with another writer, each on the refreshed table (and skipped when the refreshed table already holds the batch)."`
}

// CatalogConfig picks and configures the catalog.
type CatalogConfig struct {
	Type   string         `yaml:"type" required:"true" enum:"rest,sql,memory" doc:"Catalog type: rest (an Iceberg REST catalog: Polaris, Tabular, Lakekeeper, Gravitino), sql (iceberg-go's SQL catalog in a PostgreSQL database, no catalog service needed) or memory (the catalog lives in this process only and is lost when it exits, while data and metadata files stay in the warehouse; sinks of one process with the same warehouse share it; for tests and one-off runs)."`
	REST   *RESTOptions   `yaml:"rest" doc:"REST catalog settings (type rest)."`
	SQL    *SQLOptions    `yaml:"sql" doc:"SQL catalog settings (type sql)."`
	Memory *MemoryOptions `yaml:"memory" doc:"Memory catalog settings (type memory)."`
}

// S3Options configures the S3 file IO (iceberg-go's s3.* properties).
type S3Options struct {
	Region          string `yaml:"region" doc:"AWS region (s3.region)."`
	Endpoint        string `yaml:"endpoint" doc:"Endpoint URL instead of AWS's (MinIO, tests), like http://minio:9000 (s3.endpoint)."`
	PathStyleAccess bool   `yaml:"path_style_access" default:"false" doc:"Address buckets as endpoint/bucket/key (MinIO and most S3-compatible stores need it); false is virtual-hosted style (s3.force-virtual-addressing)."`
	AccessKeyID     string `yaml:"access_key_id" doc:"Static access key ID (s3.access-key-id)."`
	SecretAccessKey string `yaml:"secret_access_key" secret:"true" doc:"Static secret access key (s3.secret-access-key)."`
	SessionToken    string `yaml:"session_token" secret:"true" doc:"Session token of temporary credentials (s3.session-token)."`
}

// props are the S3 settings as iceberg-go file IO properties.
func (o *S3Options) props() map[string]string {
	p := map[string]string{}
	if o == nil {
		return p
	}
	set := func(k, v string) {
		if v != "" {
			p[k] = v
		}
	}
	set("s3.region", o.Region)
	set("s3.endpoint", o.Endpoint)
	set("s3.access-key-id", o.AccessKeyID)
	set("s3.secret-access-key", o.SecretAccessKey)
	set("s3.session-token", o.SessionToken)
	p["s3.force-virtual-addressing"] = strconv.FormatBool(!o.PathStyleAccess)
	return p
}

// ioProps are the file IO properties of the s3, gcs and azure blocks.
func (c *Config) ioProps() ice.Properties {
	p := ice.Properties{}
	maps.Copy(p, c.S3.props())
	if g := c.GCS; g != nil {
		if g.ServiceAccountPath != "" {
			p[iceio.GCSKeyPath] = g.ServiceAccountPath
		}
		if g.Endpoint != "" {
			p[iceio.GCSEndpoint] = g.Endpoint
			// Emulators serve reads on the JSON API only.
			p[iceio.GCSUseJSONAPI] = "true"
			if g.ServiceAccountPath == "" && !g.UseADC {
				p[iceio.GCSNoAuth] = "true"
			}
		}
	}
	if a := c.Azure; a != nil {
		account := a.Account
		if account == "" {
			account = connStringField(a.ConnectionString, "AccountName")
		}
		switch {
		case a.ConnectionString != "":
			p[iceio.ADLSConnectionStringPrefix+account] = a.ConnectionString
		case a.AccessKey != "":
			p[iceio.ADLSSharedKeyAccountName] = account
			p[iceio.ADLSSharedKeyAccountKey] = a.AccessKey
		case a.SASToken != "":
			// iceberg-go looks the token up by the location's host.
			tok := strings.TrimPrefix(a.SASToken, "?")
			p[iceio.ADLSSasTokenPrefix+account+".dfs.core.windows.net"] = tok
			p[iceio.ADLSSasTokenPrefix+account+".blob.core.windows.net"] = tok
		case a.UseManagedIdentity:
			p[iceio.ADLSManagedIdentityEnabled] = "true"
		}
		if u, err := url.Parse(a.Endpoint); err == nil && a.Endpoint != "" {
			// iceberg-go builds <protocol>://<account>.<endpoint>, or
			// <protocol>://<endpoint>/<account> for a local emulator.
			p[iceio.ADLSProtocol] = u.Scheme
			p[iceio.ADLSEndpoint] = strings.TrimPrefix(u.Host, account+".")
		}
	}
	return p
}

// connStringField is the value of key in an Azure connection string.
func connStringField(cs, key string) string {
	for _, part := range strings.Split(cs, ";") {
		if k, v, ok := strings.Cut(part, "="); ok && strings.EqualFold(strings.TrimSpace(k), key) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// RESTOptions configures a REST catalog.
type RESTOptions struct {
	URI        string `yaml:"uri" required:"true" doc:"REST catalog URI, like http://localhost:8181."`
	Warehouse  string `yaml:"warehouse" doc:"Warehouse location or name, sent to the catalog's config endpoint (GET /v1/config?warehouse=...), which answers with the defaults, overrides and path prefix of that warehouse. The table locations it hands out are read and written with the s3, gcs and azure blocks' settings over the catalog's own (tested here with file:// locations only)."`
	Credential string `yaml:"credential" secret:"true" doc:"OAuth authentication: client_id:client_secret (the client credentials flow against the catalog's /v1/oauth/tokens) or, without a colon, a bearer token sent as is."`
}

// SQLOptions configures the SQL catalog.
type SQLOptions struct {
	URI       string `yaml:"uri" required:"true" secret:"true" doc:"PostgreSQL connection URI of the catalog database, like postgres://user:pass@host:5432/catalog. The catalog's tables (iceberg_tables, iceberg_namespace_properties, as in Java's JdbcCatalog) are created when missing."`
	Warehouse string `yaml:"warehouse" required:"true" doc:"Root location of new tables' data and metadata: file:///path, s3://bucket/path, gs://bucket/path or abfss://container@account.dfs.core.windows.net/path."`
	Name      string `yaml:"name" default:"rivven" doc:"Catalog name, the catalog_name column of the catalog's tables (other engines reading the catalog use the same name)."`
}

// MemoryOptions configures the memory catalog.
type MemoryOptions struct {
	Warehouse string `yaml:"warehouse" required:"true" doc:"Root location of tables' data and metadata: file:///path, s3://bucket/path, gs://bucket/path or abfss://container@account.dfs.core.windows.net/path."`
}

// Validate checks what the tags cannot express: one catalog block, the
// one catalog.type names; identifier columns only with upsert, and
// partition columns among them; warehouses and URIs in forms the storage
// layer can open.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	blocks := []struct {
		name string
		set  bool
	}{{CatalogREST, c.Catalog.REST != nil}, {CatalogSQL, c.Catalog.SQL != nil}, {CatalogMemory, c.Catalog.Memory != nil}}
	for _, b := range blocks {
		if b.set && b.name != c.Catalog.Type {
			ps = append(ps, spec.Problem{Path: "catalog." + b.name, Message: fmt.Sprintf("%s settings are set but catalog.type is %q", b.name, c.Catalog.Type)})
		}
	}
	switch c.Catalog.Type {
	case CatalogREST:
		if c.Catalog.REST == nil {
			ps = append(ps, spec.Problem{Path: "catalog.rest", Message: "required with catalog.type rest: uri"})
		} else {
			ps = append(ps, checkURI("catalog.rest.uri", c.Catalog.REST.URI, "http", "https")...)
		}
	case CatalogSQL:
		if c.Catalog.SQL == nil {
			ps = append(ps, spec.Problem{Path: "catalog.sql", Message: "required with catalog.type sql: uri and warehouse"})
		} else {
			ps = append(ps, checkURI("catalog.sql.uri", c.Catalog.SQL.URI, "postgres", "postgresql")...)
			ps = append(ps, checkWarehouse("catalog.sql.warehouse", c.Catalog.SQL.Warehouse)...)
		}
	case CatalogMemory:
		if c.Catalog.Memory == nil {
			ps = append(ps, spec.Problem{Path: "catalog.memory", Message: "required with catalog.type memory: warehouse"})
		} else {
			ps = append(ps, checkWarehouse("catalog.memory.warehouse", c.Catalog.Memory.Warehouse)...)
		}
	}
	if strings.TrimSpace(c.Namespace) == "" {
		ps = append(ps, spec.Problem{Path: "namespace", Message: "required: the Iceberg namespace"})
	}
	for _, part := range strings.Split(c.Namespace, ".") {
		if c.Namespace != "" && part == "" {
			ps = append(ps, spec.Problem{Path: "namespace", Message: "empty level: no leading, trailing or double dots"})
			break
		}
	}
	if strings.TrimSpace(c.Table) == "" || strings.Contains(c.Table, ".") {
		ps = append(ps, spec.Problem{Path: "table", Message: "required: a table name without dots (levels go in namespace)"})
	}
	switch c.Partitioning {
	case "", PartitionNone:
		if len(c.PartitionColumns) > 0 {
			ps = append(ps, spec.Problem{Path: "partition_columns", Message: "set but partitioning is none"})
		}
	case PartitionIdentity, PartitionBucket:
		if len(c.PartitionColumns) == 0 {
			ps = append(ps, spec.Problem{Path: "partition_columns", Message: fmt.Sprintf("required with partitioning %s: the columns to partition by", c.Partitioning)})
		}
	case PartitionTime:
		if len(c.PartitionColumns) != 1 {
			ps = append(ps, spec.Problem{Path: "partition_columns", Message: "partitioning time takes exactly one timestamp or date column"})
		}
	}
	if len(c.IdentifierColumns) > 0 && c.CommitMode != CommitUpsert {
		ps = append(ps, spec.Problem{Path: "identifier_columns", Message: "set but commit_mode is not upsert"})
	}
	if c.CommitMode == CommitUpsert && len(c.IdentifierColumns) > 0 {
		// Equality deletes are written per partition, from the key values
		// alone (as Flink's upsert mode requires).
		for i, col := range c.PartitionColumns {
			if !slices.Contains(c.IdentifierColumns, col) {
				ps = append(ps, spec.Problem{Path: fmt.Sprintf("partition_columns[%d]", i), Message: fmt.Sprintf("%q is not among identifier_columns: with commit_mode upsert the partition columns must be key columns", col)})
			}
		}
	}
	for i, col := range c.IdentifierColumns {
		if strings.TrimSpace(col) == "" || slices.Contains(c.IdentifierColumns[:i], col) {
			ps = append(ps, spec.Problem{Path: fmt.Sprintf("identifier_columns[%d]", i), Message: "empty or repeated column name"})
		}
	}
	return ps
}

func checkURI(path, uri string, schemes ...string) []spec.Problem {
	u, err := url.Parse(uri)
	if err != nil {
		// The URI may hold a password: name the problem, not the value.
		return []spec.Problem{{Path: path, Message: "not a URI"}}
	}
	for _, s := range schemes {
		if u.Scheme == s {
			return nil
		}
	}
	return []spec.Problem{{Path: path, Message: fmt.Sprintf("scheme %q is not supported (allowed: %s)", u.Scheme, strings.Join(schemes, ", "))}}
}

func checkWarehouse(path, wh string) []spec.Problem {
	u, err := url.Parse(wh)
	switch {
	case err != nil:
		return []spec.Problem{{Path: path, Message: fmt.Sprintf("%q is not a URI", wh)}}
	case u.Scheme == "file" && u.Path != "":
	case (u.Scheme == "s3" || u.Scheme == "s3a" || u.Scheme == "gs") && u.Host != "":
	case (u.Scheme == "abfs" || u.Scheme == "abfss" || u.Scheme == "wasb" || u.Scheme == "wasbs") && u.Host != "" && u.User.Username() != "":
	default:
		return []spec.Problem{{Path: path, Message: fmt.Sprintf("%q is not supported: warehouses are file:///path, s3://bucket/path, gs://bucket/path or abfss://container@account.dfs.core.windows.net/path", wh)}}
	}
	return nil
}
