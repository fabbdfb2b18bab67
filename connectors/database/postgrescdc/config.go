package postgrescdc

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rivven/rivven-connect/connectors/database/cdc"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Config is the postgres-cdc source's config block.
type Config struct {
	Host                       string              `yaml:"host" required:"true" doc:"Database host."`
	Port                       int                 `yaml:"port" default:"5432" min:"1" max:"65535" doc:"Database port."`
	Database                   string              `yaml:"database" required:"true" doc:"Database name."`
	User                       string              `yaml:"user" required:"true" doc:"Username; needs the REPLICATION attribute (or superuser) and SELECT on the captured tables."`
	Password                   string              `yaml:"password" required:"true" secret:"true" doc:"Password (may be empty with trust authentication)."`
	SlotName                   string              `yaml:"slot_name" required:"true" doc:"Replication slot name (lower-case letters, digits, underscore)."`
	PublicationName            string              `yaml:"publication_name" required:"true" doc:"Publication name."`
	PublicationTables          []string            `yaml:"publication_tables" doc:"Tables (schema.table) the auto-created publication includes; empty = all tables. Ignored when the publication already exists."`
	AutoCreateSlot             bool                `yaml:"auto_create_slot" default:"true" doc:"Create the replication slot when it does not exist."`
	AutoCreatePublication      bool                `yaml:"auto_create_publication" default:"true" doc:"Create the publication when it does not exist."`
	Schemas                    []string            `yaml:"schemas" doc:"Only capture tables in these schemas; empty = every schema the publication covers."`
	Tables                     []string            `yaml:"tables" doc:"Only capture these tables (schema.table, or table in any schema); empty = every table the publication covers."`
	TLS                        TLS                 `yaml:"tls" doc:"TLS settings."`
	DropSlotOnStop             bool                `yaml:"drop_slot_on_stop" default:"false" doc:"Drop the replication slot when the source stops cleanly. The next start then cannot resume and falls back to the snapshot mode; use for throw-away pipelines only."`
	Snapshot                   Snapshot            `yaml:"snapshot" doc:"Initial snapshot settings."`
	HeartbeatIntervalSecs      int                 `yaml:"heartbeat_interval_secs" default:"10" min:"0" doc:"Every this many seconds of quiet, write a non-transactional pg_logical_emit_message so that the slot's confirmed position advances on an idle database and WAL does not pile up; 0 disables."`
	ColumnFilters              map[string][]string `yaml:"column_filters" doc:"Per table (schema.table), the columns to capture; other columns are left out of events. Key columns are always kept."`
	ProvideTransactionMetadata bool                `yaml:"provide_transaction_metadata" default:"false" doc:"As Debezium's provide.transaction.metadata: a BEGIN state event before the first change of each transaction and an END one after its last (metadata.control: transaction, data: Debezium's transaction record with event_count and data_collections), and every change numbered among its table's changes of the transaction (metadata.data_collection_order). The Debezium encoding with provide_transaction_metadata writes them to the transaction topic."`
}

// TLS configures the connection's encryption, as libpq's sslmode.
type TLS = cdc.TLS

// Snapshot configures the initial copy of the tables.
type Snapshot struct {
	Mode           string   `yaml:"mode" default:"initial" enum:"initial,always,never,when_needed,initial_only,no_data,recovery" doc:"initial: snapshot once, then stream; always: snapshot on every start, then stream; never: stream only; when_needed: snapshot when there is no usable position (first start, or the slot was lost or invalidated); initial_only: snapshot once and stop; no_data: emit schema events only, then stream; recovery: rebuild what a lost slot or a lost history took: with a usable slot, a schema event per table, then stream from the stored position; when the slot is gone or invalidated (its WAL removed), or no position is stored, drop what is left of it, create it again and take a snapshot from its exported snapshot, then stream with an exact handoff."`
	BatchSize      int      `yaml:"batch_size" default:"10000" min:"1" doc:"Rows per snapshot chunk (keyset pagination by primary key); each chunk is one emitted batch and a resume point."`
	ParallelTables int      `yaml:"parallel_tables" default:"4" min:"1" max:"64" doc:"Tables read at the same time (one connection each)."`
	IncludeTables  []string `yaml:"include_tables" doc:"Only snapshot these tables (schema.table or table); empty = all captured tables. Excluded tables are still streamed."`
	ExcludeTables  []string `yaml:"exclude_tables" doc:"Do not snapshot these tables (schema.table or table). They are still streamed."`
}

var (
	slotNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
)

// Validate checks what the tags cannot express; New runs it too, for
// configs built in code.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	add := func(path, format string, args ...any) {
		ps = append(ps, spec.Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	ps = append(ps, cdc.ValidateServer(c.Host, c.Port, c.Database, c.User)...)
	if !slotNameRE.MatchString(c.SlotName) {
		add("slot_name", "%q is not a valid slot name (1-63 lower-case letters, digits and underscores)", c.SlotName)
	}
	if c.PublicationName == "" {
		add("publication_name", "must not be empty")
	}
	for i, t := range c.PublicationTables {
		if _, _, err := splitTable(t, true); err != nil {
			add(spec.Index("publication_tables", i), "%v", err)
		}
	}
	for i, t := range c.Tables {
		if _, _, err := splitTable(t, false); err != nil {
			add(spec.Index("tables", i), "%v", err)
		}
	}
	ps = append(ps, c.TLS.Validate()...)
	ps = append(ps, cdc.ValidateSnapshotMode(c.Snapshot.Mode, "recovery")...)
	if c.Snapshot.BatchSize < 1 {
		add("snapshot.batch_size", "must be at least 1")
	}
	if c.Snapshot.ParallelTables < 1 || c.Snapshot.ParallelTables > 64 {
		add("snapshot.parallel_tables", "must be between 1 and 64")
	}
	for i, t := range c.Snapshot.IncludeTables {
		if _, _, err := splitTable(t, false); err != nil {
			add(spec.Index("snapshot.include_tables", i), "%v", err)
		}
	}
	for i, t := range c.Snapshot.ExcludeTables {
		if _, _, err := splitTable(t, false); err != nil {
			add(spec.Index("snapshot.exclude_tables", i), "%v", err)
		}
	}
	if c.HeartbeatIntervalSecs < 0 {
		add("heartbeat_interval_secs", "must be at least 0")
	}
	for t := range c.ColumnFilters {
		if _, _, err := splitTable(t, true); err != nil {
			add(spec.Join("column_filters", t), "%v", err)
		}
	}
	return ps
}

// splitTable splits "schema.table" (or "table" when !qualified, schema
// then empty). Quoting is not supported: names are taken literally.
func splitTable(s string, qualified bool) (string, string, error) {
	if s == "" {
		return "", "", fmt.Errorf("table name must not be empty")
	}
	parts := strings.Split(s, ".")
	switch {
	case len(parts) == 2 && parts[0] != "" && parts[1] != "":
		return parts[0], parts[1], nil
	case len(parts) == 1 && !qualified:
		return "", parts[0], nil
	}
	if qualified {
		return "", "", fmt.Errorf("%q: expected schema.table", s)
	}
	return "", "", fmt.Errorf("%q: expected table or schema.table", s)
}

// connConfig builds the pgx connection config. Session settings make the
// server's text output of dates, times and intervals unambiguous: the
// type mapping relies on them (for streamed rows the walsender formats
// values with these settings too).
func (c *Config) connConfig(replication bool) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cfg.Host = c.Host
	cfg.Port = uint16(c.Port)
	cfg.Database = c.Database
	cfg.User = c.User
	cfg.Password = c.Password
	cfg.ConnectTimeout = 30 * time.Second
	cfg.Fallbacks = nil
	cfg.RuntimeParams = map[string]string{
		"application_name":   "rivven-connect",
		"DateStyle":          "ISO, YMD",
		"TimeZone":           "UTC",
		"IntervalStyle":      "iso_8601",
		"extra_float_digits": "3",
		"client_encoding":    "UTF8",
	}
	if replication {
		cfg.RuntimeParams["replication"] = "database"
	}
	tlsCfg, fallbackPlain, err := c.TLS.Client(c.Host)
	if err != nil {
		return nil, err
	}
	cfg.TLSConfig = tlsCfg
	if fallbackPlain {
		cfg.Fallbacks = []*pgconn.FallbackConfig{{Host: cfg.Host, Port: cfg.Port}}
	}
	return cfg, nil
}

// addr renders host:port for messages (never the password).
func (c *Config) addr() string {
	return net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
}
