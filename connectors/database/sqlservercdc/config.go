package sqlservercdc

import (
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/rivven/rivven-connect/shared/spec"
)

// Config is the sqlserver-cdc source's config block: the reference's
// table, plus the chunk and batch sizes and the connect timeout.
type Config struct {
	Host                   string   `yaml:"host" required:"true" doc:"SQL Server host."`
	Port                   int      `yaml:"port" default:"1433" min:"1" max:"65535" doc:"SQL Server port."`
	Database               string   `yaml:"database" required:"true" doc:"Database name; CDC must be enabled on it (sys.sp_cdc_enable_db)."`
	Username               string   `yaml:"username" required:"true" doc:"Username (SQL Server authentication); needs SELECT on the captured tables and membership of each capture instance's gating role, if it has one."`
	Password               string   `yaml:"password" required:"true" secret:"true" doc:"Password (redacted in logs)."`
	Schema                 string   `yaml:"schema" default:"dbo" doc:"Schema whose CDC-enabled tables are captured."`
	IncludeTables          []string `yaml:"include_tables" doc:"Tables to include (empty = all CDC-enabled tables of schema); names or * ? wildcards."`
	ExcludeTables          []string `yaml:"exclude_tables" doc:"Tables to exclude; wins over include_tables."`
	SnapshotMode           string   `yaml:"snapshot_mode" default:"initial" enum:"initial,always,never,when_needed,initial_only,schema_only,recovery" doc:"initial: snapshot when there is no stored position, then stream; always: snapshot on every start; never: no snapshot, stream from the earliest change the change tables still hold; when_needed: snapshot when there is no stored position or CDC cleanup already removed it; initial_only: snapshot and stop; schema_only: no data snapshot, stream from the current end of the change tables; recovery: as initial, and when cleanup removed the stored position, snapshot again only the tables whose changes were lost and keep streaming the others from where they were. With initial, never and schema_only a lost position stops the source with an error."`
	PollIntervalMS         int      `yaml:"poll_interval_ms" default:"500" min:"10" max:"3600000" doc:"CDC poll interval in milliseconds: how long to wait after the change tables had nothing new."`
	Encrypt                bool     `yaml:"encrypt" default:"false" doc:"Enable TLS (encrypt=true; the certificate is verified unless trust_server_certificate). false still lets the driver encrypt the login packet, as SQL Server requires."`
	TrustServerCertificate bool     `yaml:"trust_server_certificate" default:"false" doc:"Trust self-signed certs: do not verify the server's certificate."`

	SnapshotChunkSize       int `yaml:"snapshot_chunk_size" default:"10000" min:"1" max:"1000000" doc:"Rows per primary-key chunk of a snapshot (one SELECT and one batch each); the stored position says which chunk was last, so a restarted snapshot resumes after it."`
	SnapshotCaptureWaitSecs int `yaml:"snapshot_capture_wait_secs" default:"60" min:"0" max:"3600" doc:"After each snapshot chunk, how long to wait at most for the capture job (which reads the log asynchronously) to pass the moment the chunk was read, so that every change the chunk already contains is in the change tables and its row is left to the stream. When it does not pass in time (SQL Server Agent stopped), the rest of the snapshot does not wait and such rows can arrive twice; 0 never waits."`
	MaxBatchSize            int `yaml:"max_batch_size" default:"1000" min:"1" max:"100000" doc:"Most change events handed to the pipeline in one batch while streaming."`
	ConnectTimeoutSecs      int `yaml:"connect_timeout_secs" default:"30" min:"1" max:"3600" doc:"Timeout in seconds for connecting and logging in."`
}

// Validate checks what the tags cannot express.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	add := func(p, format string, args ...any) {
		ps = append(ps, spec.Problem{Path: p, Message: fmt.Sprintf(format, args...)})
	}
	if strings.TrimSpace(c.Host) == "" {
		add("host", "must not be empty")
	}
	if strings.ContainsAny(c.Host, "/;") {
		add("host", "is a host name or address (an instance is reached by its port)")
	}
	if strings.TrimSpace(c.Database) == "" {
		add("database", "must not be empty")
	}
	if strings.TrimSpace(c.Schema) == "" {
		add("schema", "must not be empty")
	}
	for name, list := range map[string][]string{"include_tables": c.IncludeTables, "exclude_tables": c.ExcludeTables} {
		for i, p := range list {
			if _, err := path.Match(p, ""); err != nil || strings.TrimSpace(p) == "" {
				add(spec.Index(name, i), "%q is not a table name or wildcard pattern", p)
			}
		}
	}
	if c.TrustServerCertificate && !c.Encrypt {
		add("trust_server_certificate", "only applies with encrypt: true")
	}
	return ps
}

// dsn is the go-mssqldb connection URL.
func (c *Config) dsn() string {
	q := url.Values{}
	q.Set("database", c.Database)
	q.Set("app name", "rivven-connect sqlserver-cdc")
	q.Set("dial timeout", strconv.Itoa(c.ConnectTimeoutSecs))
	if c.Encrypt {
		q.Set("encrypt", "true")
	} else {
		q.Set("encrypt", "false")
	}
	q.Set("TrustServerCertificate", strconv.FormatBool(c.TrustServerCertificate))
	u := url.URL{Scheme: "sqlserver", User: url.UserPassword(c.Username, c.Password), Host: c.Host + ":" + strconv.Itoa(c.Port), RawQuery: q.Encode()}
	return u.String()
}

func (c *Config) poll() time.Duration { return time.Duration(c.PollIntervalMS) * time.Millisecond }

// captured reports whether a table of the schema is captured.
func (c *Config) captured(table string) bool {
	if len(c.IncludeTables) > 0 && !matchAny(c.IncludeTables, c.Schema, table) {
		return false
	}
	return !matchAny(c.ExcludeTables, c.Schema, table)
}

// matchAny matches a table against patterns of its name or of
// schema.name, without regard to case (SQL Server's default collations
// ignore it).
func matchAny(patterns []string, schema, table string) bool {
	for _, p := range patterns {
		name := table
		if strings.Contains(p, ".") {
			name = schema + "." + table
		}
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(name)); ok {
			return true
		}
	}
	return false
}
