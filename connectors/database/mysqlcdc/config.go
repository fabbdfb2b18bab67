package mysqlcdc

import (
	"crypto/tls"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/rivven/rivven-connect/connectors/database/cdc"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Config is the mysql-cdc source's config block.
type Config struct {
	Host     string `yaml:"host" required:"true" doc:"Database host."`
	Port     int    `yaml:"port" default:"3306" min:"1" max:"65535" doc:"Database port."`
	Database string `yaml:"database" required:"true" doc:"Database (schema) whose tables are captured."`
	User     string `yaml:"user" required:"true" doc:"Username; needs REPLICATION SLAVE, REPLICATION CLIENT and SELECT (plus RELOAD on MySQL for the snapshot lock)."`
	Password string `yaml:"password" required:"true" secret:"true" doc:"Password."`
	ServerID uint32 `yaml:"server_id" required:"true" min:"1" max:"4294967295" doc:"Unique server ID this source registers with as a replica; must differ from every server and replica in the topology."`

	Tables        []string `yaml:"tables" doc:"Tables to include (empty = all). Entries are table names or db.table; * and ? wildcards allowed."`
	TableRegex    string   `yaml:"table_regex" doc:"Regular expression a table name (or db.table) must match."`
	IncludeTables []string `yaml:"include_tables" doc:"More tables to include, same syntax as tables (the two lists are merged)."`
	ExcludeTables []string `yaml:"exclude_tables" doc:"Tables to leave out, same syntax as tables; wins over the include lists."`

	BinlogFilename string `yaml:"binlog_filename" doc:"Binlog file to start streaming from when there is no stored position and no snapshot is taken (snapshot.mode never or no_data). Empty: the current end of the binlog."`
	BinlogPosition uint32 `yaml:"binlog_position" default:"4" min:"4" doc:"Position in binlog_filename to start from."`
	UseGTID        bool   `yaml:"use_gtid" default:"true" doc:"Resume by GTID set (MariaDB domain-server-seq or MySQL uuid:interval) instead of file/position when the stored position has one; survives a failover to another server of the same topology."`
	GTIDSet        string `yaml:"gtid_set" doc:"GTID set to start streaming after when there is no stored position and no snapshot is taken; overrides binlog_filename."`

	Snapshot *Snapshot `yaml:"snapshot" doc:"Initial snapshot settings."`
	TLS      *TLS      `yaml:"tls" doc:"TLS settings for the connections to the server."`

	HeartbeatIntervalSecs      int    `yaml:"heartbeat_interval_secs" default:"10" min:"1" max:"3600" doc:"Seconds between server heartbeats on an idle binlog stream; the link counts as dead after three missed heartbeats."`
	ConnectTimeoutSecs         int    `yaml:"connect_timeout_secs" default:"30" min:"1" doc:"Timeout in seconds for connecting and authenticating."`
	MaxBatchSize               int    `yaml:"max_batch_size" default:"1000" min:"1" max:"100000" doc:"Most events handed to the pipeline in one batch while streaming."`
	RetryInitialMS             int    `yaml:"retry_initial_ms" default:"200" min:"1" doc:"First reconnect delay in milliseconds after the binlog stream broke."`
	RetryMaxMS                 int    `yaml:"retry_max_ms" default:"30000" min:"1" doc:"Largest reconnect delay in milliseconds."`
	SignalTable                string `yaml:"signal_table" default:"rivven_signal" doc:"Table in database through which rivven-connect snapshot asks the running source to snapshot tables again while it streams (created by the command when missing; the request travels through the binlog, so it is picked up in order and after a restart). Never captured."`
	ProvideTransactionMetadata bool   `yaml:"provide_transaction_metadata" default:"false" doc:"As Debezium's provide.transaction.metadata: a BEGIN state event before the first row change of each transaction and an END one after its last (metadata.control: transaction, key {id}, data: Debezium's transaction record with event_count and data_collections; the id is the transaction's GTID), and every row change numbered in its transaction (metadata.sequence) and among its table's changes (metadata.data_collection_order). The Debezium encoding with provide_transaction_metadata writes them to the transaction topic."`
}

// Snapshot configures the initial snapshot.
type Snapshot struct {
	Mode          string   `yaml:"mode" default:"initial" enum:"initial,always,never,when_needed,initial_only,no_data" doc:"initial: snapshot on first start, then stream; always: snapshot on every start; never: only stream; when_needed: snapshot when there is no stored position or the server no longer has it (binlog file purged, or the dump refused for a purged GTID); initial_only: snapshot and stop; no_data: emit the table schemas only, then stream."`
	BatchSize     int      `yaml:"batch_size" default:"10000" min:"1" max:"1000000" doc:"Rows per primary-key chunk (one SELECT and one batch each)."`
	IncludeTables []string `yaml:"include_tables" doc:"Snapshot only these of the captured tables (same syntax as tables); the others are only streamed."`
	ExcludeTables []string `yaml:"exclude_tables" doc:"Captured tables not to snapshot."`
}

// TLS configures encryption of the server connections.
type TLS = cdc.TLS

// Validate checks what the tags cannot express; New runs it too, for
// configs built in code.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	add := func(p, format string, args ...any) {
		ps = append(ps, spec.Problem{Path: p, Message: fmt.Sprintf(format, args...)})
	}
	ps = append(ps, cdc.ValidateServer(c.Host, c.Port, c.Database, c.User)...)
	if c.ServerID == 0 {
		add("server_id", "must be between 1 and 4294967295 and unique in the replication topology")
	}
	for name, list := range map[string][]string{"tables": c.Tables, "include_tables": c.IncludeTables, "exclude_tables": c.ExcludeTables} {
		for i, p := range list {
			if _, err := path.Match(p, ""); err != nil || strings.TrimSpace(p) == "" {
				add(spec.Index(name, i), "%q is not a table name or wildcard pattern", p)
			}
		}
	}
	if c.TableRegex != "" {
		if _, err := regexp.Compile(c.TableRegex); err != nil {
			add("table_regex", "invalid regular expression: %v", err)
		}
	}
	if c.BinlogPosition != 0 && c.BinlogPosition < 4 {
		add("binlog_position", "must be at least 4 (the first event of a binlog file)")
	}
	if c.GTIDSet != "" {
		if _, err := parseGTIDSet(c.GTIDSet); err != nil {
			add("gtid_set", "%v", err)
		}
	}
	if s := c.Snapshot; s != nil {
		if mp := cdc.ValidateSnapshotMode(s.Mode); mp != nil {
			ps = append(ps, mp...)
		}
		if s.BatchSize < 1 {
			add("snapshot.batch_size", "must be at least 1")
		}
		for name, list := range map[string][]string{"snapshot.include_tables": s.IncludeTables, "snapshot.exclude_tables": s.ExcludeTables} {
			for i, p := range list {
				if _, err := path.Match(p, ""); err != nil {
					add(spec.Index(name, i), "%q is not a table name or wildcard pattern", p)
				}
			}
		}
	}
	if c.TLS != nil {
		ps = append(ps, c.TLS.Validate()...)
	}
	if c.HeartbeatIntervalSecs < 1 || c.HeartbeatIntervalSecs > 3600 {
		add("heartbeat_interval_secs", "must be between 1 and 3600")
	}
	if c.ConnectTimeoutSecs < 1 {
		add("connect_timeout_secs", "must be at least 1")
	}
	if c.MaxBatchSize < 1 {
		add("max_batch_size", "must be at least 1")
	}
	if c.RetryInitialMS < 1 {
		add("retry_initial_ms", "must be at least 1")
	}
	if c.RetryMaxMS < c.RetryInitialMS {
		add("retry_max_ms", "must be at least retry_initial_ms")
	}
	return ps
}

func (c *Config) snapshotMode() string {
	if c.Snapshot == nil || c.Snapshot.Mode == "" {
		return "initial"
	}
	return c.Snapshot.Mode
}

func (c *Config) snapshotBatch() int {
	if c.Snapshot == nil || c.Snapshot.BatchSize < 1 {
		return 10000
	}
	return c.Snapshot.BatchSize
}

// tlsConfig builds the client TLS config (nil for mode disable) and says
// whether the server must speak TLS (every mode but prefer).
func (c *Config) tlsConfig() (*tls.Config, bool, error) {
	t := c.TLS
	if t == nil {
		t = &cdc.TLS{}
	}
	tc, prefer, err := t.Client(c.Host)
	return tc, tc != nil && !prefer, err
}

// filter decides which tables are captured.
type filter struct {
	db       string
	include  []string
	exclude  []string
	re       *regexp.Regexp
	snapIncl []string
	snapExcl []string
	signal   string
}

func newFilter(c *Config) *filter {
	f := &filter{db: c.Database, include: append(append([]string(nil), c.Tables...), c.IncludeTables...), exclude: c.ExcludeTables, signal: c.SignalTable}
	if c.TableRegex != "" {
		f.re = regexp.MustCompile(c.TableRegex)
	}
	if c.Snapshot != nil {
		f.snapIncl, f.snapExcl = c.Snapshot.IncludeTables, c.Snapshot.ExcludeTables
	}
	return f
}

func matchAny(patterns []string, db, table string) bool {
	for _, p := range patterns {
		name := table
		if strings.Contains(p, ".") {
			name = db + "." + table
		}
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// captured reports whether changes of db.table are emitted.
func (f *filter) captured(db, table string) bool {
	if db != f.db || table == f.signal {
		return false
	}
	if len(f.include) > 0 && !matchAny(f.include, db, table) {
		return false
	}
	if matchAny(f.exclude, db, table) {
		return false
	}
	if f.re != nil && !f.re.MatchString(table) && !f.re.MatchString(db+"."+table) {
		return false
	}
	return true
}

// snapshotted reports whether a captured table is part of the snapshot.
func (f *filter) snapshotted(db, table string) bool {
	if len(f.snapIncl) > 0 && !matchAny(f.snapIncl, db, table) {
		return false
	}
	return !matchAny(f.snapExcl, db, table)
}
