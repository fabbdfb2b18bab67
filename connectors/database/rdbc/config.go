package rdbc

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/rivven/rivven-connect/shared/spec"
)

// Sink modes.
const (
	ModeInsert = "insert"
	ModeUpsert = "upsert"
	ModeUpdate = "update"
)

// Source modes (the Kafka Connect JDBC model).
const (
	ModeBulk                  = "bulk"
	ModeIncrementing          = "incrementing"
	ModeTimestamp             = "timestamp"
	ModeTimestampIncrementing = "timestamp+incrementing"
)

// Conn is the connection every rdbc component shares.
type Conn struct {
	URL          string `yaml:"url" required:"true" secret:"true" doc:"Database URL: postgres://user:password@host:5432/db?sslmode=disable (pgx; libpq parameters) or mysql://user:password@host:3306/db (MySQL and MariaDB; go-sql-driver parameters such as tls=true). It is a secret because it usually carries the password."`
	MaxOpenConns int    `yaml:"max_open_conns" default:"4" min:"1" max:"256" doc:"Most connections open at once."`
}

// SinkConfig is the rdbc sink's config block.
type SinkConfig struct {
	Conn              `yaml:",inline"`
	Table             string    `yaml:"table" default:"'{table}'" doc:"Target table, optionally schema.table. {table} is the event's source table (its stream when it has none), {stream} the event's stream, {schema} its source schema or namespace."`
	Mode              string    `yaml:"mode" default:"insert" enum:"insert,upsert,update" doc:"insert: plain INSERT (a duplicate key is a bad row); upsert: insert or replace by key (PostgreSQL ON CONFLICT, MySQL/MariaDB ON DUPLICATE KEY UPDATE); update: UPDATE by key (a key with no row is a bad row). CDC updates are written by key in upsert and update modes; a changed key deletes the old row first."`
	PKFields          []string  `yaml:"pk_fields" doc:"Key columns for upsert, update and delete; default: the fields of the event's key, else the table's primary key."`
	Delete            DeleteOpt `yaml:"delete" doc:"Deletes of CDC events."`
	AutoCreate        bool      `yaml:"auto_create" default:"false" doc:"Create a missing target table from the event: columns typed from the source's column types when the event carries them (CDC sources), else from the JSON values; primary key from pk_fields or the event key."`
	AutoEvolve        bool      `yaml:"auto_evolve" default:"false" doc:"Add columns the target table lacks (nullable, typed as for auto_create). Without it an event with an unknown column is a bad row."`
	BatchSize         int       `yaml:"batch_size" default:"1000" min:"1" max:"100000" doc:"Events per write (one transaction); rows of one table and operation go in multi-row statements."`
	FlushIntervalSecs int       `yaml:"flush_interval_secs" default:"5" min:"0" doc:"Max wait before a long-lived runner writes a partial batch."`
}

// DeleteOpt is sinks.<name>.config.delete.
type DeleteOpt struct {
	Enabled bool `yaml:"enabled" default:"false" doc:"Apply delete events as DELETE by key (Kafka Connect's delete.enabled); off: deletes are skipped. Needs a key (pk_fields, event key or primary key)."`
}

// InsertConfig is sql_insert's config block: the rdbc sink in insert mode.
type InsertConfig struct {
	Conn              `yaml:",inline"`
	Table             string `yaml:"table" required:"true" doc:"Target table, optionally schema.table; {table}, {stream} and {schema} take the event's as in rdbc."`
	AutoCreate        bool   `yaml:"auto_create" default:"false" doc:"Create a missing target table from the event (as rdbc)."`
	AutoEvolve        bool   `yaml:"auto_evolve" default:"false" doc:"Add columns the target table lacks (as rdbc)."`
	BatchSize         int    `yaml:"batch_size" default:"1000" min:"1" max:"100000" doc:"Events per write (one transaction, multi-row INSERTs)."`
	FlushIntervalSecs int    `yaml:"flush_interval_secs" default:"5" min:"0" doc:"Max wait before a long-lived runner writes a partial batch."`
}

func (c *InsertConfig) sink() *SinkConfig {
	return &SinkConfig{Conn: c.Conn, Table: c.Table, Mode: ModeInsert, AutoCreate: c.AutoCreate, AutoEvolve: c.AutoEvolve,
		BatchSize: c.BatchSize, FlushIntervalSecs: c.FlushIntervalSecs}
}

// SourceConfig is the rdbc source's config block.
type SourceConfig struct {
	Conn               `yaml:",inline"`
	Mode               string   `yaml:"mode" default:"bulk" enum:"bulk,incrementing,timestamp,timestamp+incrementing" doc:"bulk: read every row at each poll; incrementing: rows whose incrementing_column is above the last one read (new rows only); timestamp: rows whose timestamp_column is after the last one read (new and updated rows); timestamp+incrementing: both, exact even when rows share a timestamp."`
	Tables             []string `yaml:"tables" doc:"Tables to read (table or schema.table), each its own stream; one of tables or query."`
	Query              string   `yaml:"query" doc:"Custom SELECT instead of tables; the mode's condition is applied to it as a subquery. Its stream is query_stream."`
	QueryStream        string   `yaml:"query_stream" default:"query" doc:"Stream name of the query's events."`
	IncrementingColumn string   `yaml:"incrementing_column" doc:"Strictly increasing column (an auto-increment key) for incrementing and timestamp+incrementing."`
	TimestampColumn    string   `yaml:"timestamp_column" doc:"Modification-time column for timestamp and timestamp+incrementing."`
	TimestampDelayMs   int      `yaml:"timestamp_delay_ms" default:"0" min:"0" doc:"Only read rows whose timestamp is at least this old (database clock), so that a transaction committing late with an earlier timestamp is not skipped."`
	PollIntervalMs     int      `yaml:"poll_interval_ms" default:"5000" min:"0" doc:"Wait between polls once every table is caught up; 0 reads once and stops."`
	BatchSize          int      `yaml:"batch_size" default:"1000" min:"1" max:"100000" doc:"Rows per emitted batch (and per query in the incremental modes)."`
	RequireIndex       bool     `yaml:"require_index" default:"true" doc:"Refuse to start when the incrementing or timestamp column is not the first column of an index of a table: every poll would scan the table."`
	CheckMonotonic     bool     `yaml:"check_monotonic" default:"true" doc:"Incrementing modes: at each poll, count the rows at or below the committed position and stop with an error when new ones appeared there (the column is not strictly increasing, so rows would be missed). The count is an index range scan; turn it off for very large tables."`
}

// SelectConfig is sql_select's config block: one query, read once.
type SelectConfig struct {
	Conn      `yaml:",inline"`
	Query     string `yaml:"query" required:"true" doc:"The SELECT to run."`
	Stream    string `yaml:"stream" default:"query" doc:"Stream name of its events."`
	BatchSize int    `yaml:"batch_size" default:"1000" min:"1" max:"100000" doc:"Rows per emitted batch."`
}

func (c *SelectConfig) source() *SourceConfig {
	return &SourceConfig{Conn: c.Conn, Mode: ModeBulk, Query: c.Query, QueryStream: c.Stream, BatchSize: c.BatchSize}
}

// Validate checks what the tags cannot express.
func (c *Conn) Validate() []spec.Problem {
	if _, err := parseURL(c.URL); err != nil {
		return []spec.Problem{{Path: "url", Message: err.Error()}}
	}
	return nil
}

// Validate checks what the tags cannot express.
func (c *SinkConfig) Validate() []spec.Problem {
	ps := c.Conn.Validate()
	if strings.TrimSpace(c.Table) == "" {
		ps = append(ps, spec.Problem{Path: "table", Message: "must not be empty"})
	}
	for i, f := range c.PKFields {
		if strings.TrimSpace(f) == "" {
			ps = append(ps, spec.Problem{Path: spec.Index("pk_fields", i), Message: "must not be empty"})
		}
	}
	return ps
}

// Validate checks what the tags cannot express.
func (c *InsertConfig) Validate() []spec.Problem { return c.sink().Validate() }

// Validate checks what the tags cannot express.
func (c *SelectConfig) Validate() []spec.Problem {
	ps := c.Conn.Validate()
	if strings.TrimSpace(c.Query) == "" {
		ps = append(ps, spec.Problem{Path: "query", Message: "must not be empty"})
	}
	return ps
}

// Validate checks what the tags cannot express.
func (c *SourceConfig) Validate() []spec.Problem {
	ps := c.Conn.Validate()
	add := func(path, f string, a ...any) {
		ps = append(ps, spec.Problem{Path: path, Message: fmt.Sprintf(f, a...)})
	}
	switch {
	case len(c.Tables) == 0 && strings.TrimSpace(c.Query) == "":
		add("tables", "set tables or query")
	case len(c.Tables) > 0 && strings.TrimSpace(c.Query) != "":
		add("query", "set tables or query, not both")
	}
	for i, t := range c.Tables {
		if strings.TrimSpace(t) == "" || strings.Count(t, ".") > 1 {
			add(spec.Index("tables", i), "%q is not table or schema.table", t)
		}
	}
	needInc := c.Mode == ModeIncrementing || c.Mode == ModeTimestampIncrementing
	needTS := c.Mode == ModeTimestamp || c.Mode == ModeTimestampIncrementing
	if needInc && c.IncrementingColumn == "" {
		add("incrementing_column", "required with mode %s", c.Mode)
	}
	if needTS && c.TimestampColumn == "" {
		add("timestamp_column", "required with mode %s", c.Mode)
	}
	if !needInc && c.IncrementingColumn != "" {
		add("incrementing_column", "only used with modes incrementing and timestamp+incrementing, not %s", c.Mode)
	}
	if !needTS && c.TimestampColumn != "" {
		add("timestamp_column", "only used with modes timestamp and timestamp+incrementing, not %s", c.Mode)
	}
	return ps
}

// dbURL is a parsed url.
type dbURL struct {
	dialect dialect
	u       *url.URL
}

func parseURL(raw string) (dbURL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error quotes the URL and with it the password.
		return dbURL{}, fmt.Errorf("not a URL (postgres://… or mysql://…)")
	}
	switch strings.ToLower(u.Scheme) {
	case "postgres", "postgresql":
		return dbURL{dialect: postgres, u: u}, nil
	case "mysql", "mariadb":
		if u.Host == "" {
			return dbURL{}, fmt.Errorf("mysql URL needs a host: mysql://user:password@host:3306/db")
		}
		return dbURL{dialect: mysql, u: u}, nil
	}
	return dbURL{}, fmt.Errorf("unsupported scheme %q (allowed: postgres, postgresql, mysql, mariadb)", u.Scheme)
}
