// Package mysqlcdc is the mysql-cdc source (alias mariadb-cdc): it takes a
// consistent snapshot of the captured tables and then streams row changes
// from the binary log as a replica, with exact value types, GTID or
// file/position resume and exactly-once handoff from snapshot to stream.
//
// The wire protocol (handshake, queries, binlog dump) and the binlog event
// decoder are implemented here; see conn.go, binlog.go and values.go.
package mysqlcdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
)

// Metric names this source reports.
const (
	metricEvents       = "mysql_cdc.events"
	metricTransactions = "mysql_cdc.transactions"
	metricLag          = "mysql_cdc.replication_lag_seconds"
	metricSnapshotRows = "mysql_cdc.snapshot_rows"
	metricReconnects   = "mysql_cdc.reconnects"
	metricSchema       = "mysql_cdc.schema_changes"
)

const connectorName = "mysql-cdc"

func init() {
	catalog.RegisterSource[Config](catalog.Meta{
		Name:        connectorName,
		Aliases:     []string{"mariadb-cdc"},
		Category:    catalog.Database,
		Subcategory: "CDC",
		Description: "Streams row changes from the MySQL/MariaDB binary log as a replica, after a consistent chunked snapshot; exact types, GTID or file/position resume without loss or duplicates.",
		Tags:        []string{"mysql", "mariadb", "cdc", "binlog", "replication", "gtid", "snapshot"},
		Metrics:     []string{metricEvents, metricTransactions, metricLag, metricSnapshotRows, metricReconnects, metricSchema},
	}, New)
}

// Source is the mysql-cdc source.
type Source struct {
	cfg    *Config
	filter *filter

	// snapshotted is set once a snapshot finished in this process, so
	// snapshot.mode always does not repeat it on every reconnect.
	mu          sync.Mutex
	snapshotted bool
	// snapServerID is the server's @@server_id, for the snapshot events'
	// metadata (streamed events take it from the binlog event header).
	snapServerID []byte
	// name is the source's name in the pipeline: the logical server name
	// in every event's source block (Debezium's source.name).
	name string
}

// New builds the source from a config the catalog has validated; it
// still refuses TLS files it cannot read.
func New(_ context.Context, cfg *Config) (connector.Source, error) {
	if _, _, err := cfg.tlsConfig(); err != nil {
		return nil, err
	}
	return &Source{cfg: cfg, filter: newFilter(cfg)}, nil
}

func (s *Source) connect(ctx context.Context, withDB bool) (*conn, error) {
	tc, required, err := s.cfg.tlsConfig()
	if err != nil {
		return nil, connector.Fatal(err)
	}
	p := connParams{
		Addr:        net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port)),
		User:        s.cfg.User,
		Password:    s.cfg.Password,
		TLS:         tc,
		TLSRequired: required,
		Timeout:     time.Duration(s.cfg.ConnectTimeoutSecs) * time.Second,
	}
	if withDB {
		p.Database = s.cfg.Database
	}
	c, err := dial(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s as %s: %w", p.Addr, s.cfg.User, err)
	}
	return c, nil
}

// Read snapshots (per snapshot.mode) and streams until ctx is done.
func (s *Source) Read(ctx context.Context, resume []byte, emit connector.Emitter) error {
	pos, err := parsePosition(resume)
	if err != nil {
		return connector.Fatal(err)
	}
	mode := s.cfg.snapshotMode()
	s.mu.Lock()
	done := s.snapshotted
	s.name = connector.RuntimeFrom(ctx).Name
	s.mu.Unlock()

	var inc *incremental
	switch {
	case pos != nil && pos.Snap != nil && mode == "initial_only":
		// Nothing streams: the rest is read in a new read view.
		pos, err = s.snapshot(ctx, emit, pos)
	case pos != nil && pos.Snap != nil && mode != "never" && mode != "no_data":
		var start position
		if inc, start, err = s.resumeAlongside(ctx, pos); err == nil {
			pos = &start
		}
	case pos == nil && (mode == "initial" || mode == "always" || mode == "when_needed" || mode == "initial_only"):
		pos, err = s.snapshot(ctx, emit, nil)
	case pos != nil && mode == "always" && !done:
		pos, err = s.snapshot(ctx, emit, nil)
	case pos != nil && mode == "when_needed":
		var ok bool
		if ok, err = s.positionAvailable(ctx, pos); err == nil && !ok {
			connector.RuntimeFrom(ctx).Logger().Warn("stored binlog position is no longer on the server; taking a new snapshot", "position", pos.human())
			pos, err = s.snapshot(ctx, emit, nil)
		}
	case pos == nil && mode == "no_data":
		pos, err = s.schemaOnly(ctx, emit)
	case pos == nil:
		pos, err = s.configuredStart(ctx)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if pos != nil && pos.Snap != nil {
		// Snapshot finished (or nothing to resume): stream from its start.
		pos = &position{File: pos.File, Pos: pos.Pos, GTID: pos.GTID}
	}
	if mode == "initial_only" {
		return nil
	}
	if inc == nil {
		// Nothing to read alongside yet; a snapshot signal may ask.
		inc = newIncremental(ctx, s, nil)
	}
	err = s.stream(ctx, emit, *pos, inc)
	if mode == "when_needed" && positionGone(err) {
		// The server no longer has the binlog the position needs (a
		// purged GTID is only reported once the dump starts): when_needed
		// means exactly this case is answered with a new snapshot rather
		// than a stopped source. Once per Read: a position the snapshot
		// itself just took being gone again is not something a further
		// snapshot fixes.
		connector.RuntimeFrom(ctx).Logger().Warn("mysql-cdc: the server no longer has the binlog the stored position needs; taking a new snapshot (snapshot.mode when_needed)", "position", pos.human(), "error", err)
		if pos, err = s.snapshot(ctx, emit, nil); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		pos = &position{File: pos.File, Pos: pos.Pos, GTID: pos.GTID}
		err = s.stream(ctx, emit, *pos, newIncremental(ctx, s, nil))
	}
	return err
}

// positionGone reports whether err is the server refusing the dump's
// start position (ER_MASTER_FATAL_ERROR_READING_BINLOG, 1236): the GTID
// state or binlog file it needs was purged, or never existed there.
func positionGone(err error) bool {
	var se *ServerError
	return errors.As(err, &se) && se.Code == 1236
}

// configuredStart is where streaming starts without a stored position and
// without a snapshot: gtid_set, else binlog_filename/binlog_position, else
// the current end of the binlog.
func (s *Source) configuredStart(ctx context.Context) (*position, error) {
	if s.cfg.GTIDSet != "" {
		g, _ := parseGTIDSet(s.cfg.GTIDSet)
		return &position{GTID: g.String()}, nil
	}
	if s.cfg.BinlogFilename != "" {
		p := s.cfg.BinlogPosition
		if p < 4 {
			p = 4
		}
		return &position{File: s.cfg.BinlogFilename, Pos: p}, nil
	}
	c, err := s.connect(ctx, false)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return currentPosition(c)
}

// currentPosition reads the end of the binlog and the GTID state there.
func currentPosition(c *conn) (*position, error) {
	res, err := c.query("SHOW MASTER STATUS")
	var se *ServerError
	if errors.As(err, &se) && se.Code == 1064 {
		// MySQL 8.4 renamed it.
		res, err = c.query("SHOW BINARY LOG STATUS")
	}
	if err != nil {
		return nil, err
	}
	if len(res.Rows) == 0 {
		return nil, connector.Fatal(errors.New("SHOW MASTER STATUS returned nothing: binary logging is off (set log_bin in the server config)"))
	}
	r := res.Rows[0]
	n, err := atoiBytes(r[1])
	if err != nil {
		return nil, fmt.Errorf("SHOW MASTER STATUS position %q: %w", r[1], err)
	}
	p := &position{File: string(r[0]), Pos: uint32(n)}
	if c.isMariaDB() {
		g, err := c.query("SELECT BINLOG_GTID_POS(" + quoteString(p.File) + ", " + strconv.FormatUint(n, 10) + ")")
		if err != nil {
			return nil, err
		}
		if len(g.Rows) > 0 && g.Rows[0][0] != nil {
			p.GTID = string(g.Rows[0][0])
		}
	} else if len(r) >= 5 && r[4] != nil {
		p.GTID = strings.ReplaceAll(string(r[4]), "\n", "")
	}
	return p, nil
}

// positionAvailable reports whether the server still has the binlog file
// of a stored position (for snapshot.mode when_needed).
func (s *Source) positionAvailable(ctx context.Context, p *position) (bool, error) {
	if p.File == "" {
		// GTID only: the server reports a purged GTID when the dump
		// starts, and Read answers that with a snapshot.
		return true, nil
	}
	c, err := s.connect(ctx, false)
	if err != nil {
		return false, err
	}
	defer c.Close()
	res, err := c.query("SHOW BINARY LOGS")
	if err != nil {
		return false, err
	}
	for _, r := range res.Rows {
		if string(r[0]) == p.File {
			return true, nil
		}
	}
	return false, nil
}

// schemaOnly is snapshot.mode no_data: one schema event per captured table
// at the current binlog position, then streaming from there.
func (s *Source) schemaOnly(ctx context.Context, emit connector.Emitter) (*position, error) {
	c, err := s.connect(ctx, false)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	p, err := currentPosition(c)
	if err != nil {
		return nil, err
	}
	tables, err := listTables(c, s.cfg.Database)
	if err != nil {
		return nil, err
	}
	var batch []*events.Event
	for _, t := range tables {
		if !s.filter.captured(s.cfg.Database, t) {
			continue
		}
		ts, err := loadTableSchema(c, s.cfg.Database, t)
		if err != nil {
			return nil, err
		}
		if ts == nil {
			continue
		}
		batch = append(batch, s.schemaEvent(s.cfg.Database, t, "", ts, p, time.Now().UTC()))
	}
	if len(batch) > 0 {
		if err := emit.Emit(ctx, batch); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// schemaEvent describes a table's columns (and the DDL that changed them).
func (s *Source) schemaEvent(db, table, ddl string, ts *tableSchema, p *position, at time.Time) *events.Event {
	type col struct {
		Name       string `json:"name"`
		Type       string `json:"type"`
		PrimaryKey bool   `json:"primary_key,omitempty"`
	}
	body := struct {
		Database string `json:"database"`
		Table    string `json:"table,omitempty"`
		DDL      string `json:"ddl,omitempty"`
		Columns  []col  `json:"columns,omitempty"`
		Dropped  bool   `json:"dropped,omitempty"`
	}{Database: db, Table: table, DDL: ddl}
	if ts != nil {
		for i, c := range ts.Cols {
			pk := false
			for _, k := range ts.PK {
				pk = pk || k == i
			}
			body.Columns = append(body.Columns, col{Name: c.Name, Type: ts.ColTypes[i], PrimaryKey: pk})
		}
	} else if table != "" {
		body.Dropped = true
	}
	raw, _ := json.Marshal(body)
	stream := db
	if table != "" {
		stream = db + "." + table
	}
	ns := db
	commit := at
	e := &events.Event{
		Type:      events.Schema,
		Stream:    stream,
		Namespace: &ns,
		Timestamp: time.Now().UTC(),
		Data:      events.RawPayload(raw),
		Metadata:  events.Metadata{Position: p.encode()},
		Source:    &events.SourceInfo{Connector: connectorName, Name: s.name, Database: db, Table: table, Position: p.human(), CommitTS: &commit},
	}
	return e
}

// Check verifies connectivity and the server settings CDC needs.
func (s *Source) Check(ctx context.Context) error {
	c, err := s.connect(ctx, true)
	if err != nil {
		return err
	}
	defer c.Close()
	return checkServer(c)
}

func checkServer(c *conn) error {
	res, err := c.query("SELECT @@log_bin, @@binlog_format, @@binlog_row_image")
	if err != nil {
		return err
	}
	r := res.Rows[0]
	var problems []string
	if string(r[0]) != "1" && !strings.EqualFold(string(r[0]), "ON") {
		problems = append(problems, "binary logging is off: set log_bin (e.g. log_bin = mysql-bin) in the server config and restart")
	}
	if !strings.EqualFold(string(r[1]), "ROW") {
		problems = append(problems, fmt.Sprintf("binlog_format is %s: set binlog_format = ROW (SET GLOBAL binlog_format = 'ROW' and in the server config)", r[1]))
	}
	if !strings.EqualFold(string(r[2]), "FULL") {
		problems = append(problems, fmt.Sprintf("binlog_row_image is %s: set binlog_row_image = FULL so updates and deletes carry whole rows", r[2]))
	}
	grants, err := c.query("SHOW GRANTS")
	if err != nil {
		return err
	}
	var all strings.Builder
	for _, g := range grants.Rows {
		all.WriteString(strings.ToUpper(string(g[0])))
		all.WriteByte('\n')
	}
	text := all.String()
	hasAll := strings.Contains(text, "GRANT ALL PRIVILEGES ON *.*")
	for _, priv := range [][2]string{{"REPLICATION SLAVE", "REPLICATION REPLICA"}, {"REPLICATION CLIENT", "BINLOG MONITOR"}} {
		if !hasAll && !strings.Contains(text, priv[0]) && !strings.Contains(text, priv[1]) {
			problems = append(problems, fmt.Sprintf("the user lacks %s: GRANT %s ON *.* TO the connector's user", priv[0], priv[0]))
		}
	}
	if len(problems) > 0 {
		return errors.New("mysql-cdc cannot stream: " + strings.Join(problems, "; "))
	}
	return nil
}

// Discover lists the captured tables with their primary keys.
func (s *Source) Discover(ctx context.Context) ([]connector.Stream, error) {
	c, err := s.connect(ctx, false)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	tables, err := listTables(c, s.cfg.Database)
	if err != nil {
		return nil, err
	}
	var out []connector.Stream
	for _, t := range tables {
		if !s.filter.captured(s.cfg.Database, t) {
			continue
		}
		ts, err := loadTableSchema(c, s.cfg.Database, t)
		if err != nil || ts == nil {
			continue
		}
		st := connector.Stream{Name: s.cfg.Database + "." + t, Namespace: s.cfg.Database, RowEstimate: tableEstimate(c, s.cfg.Database, t)}
		for _, k := range ts.PK {
			st.PrimaryKey = append(st.PrimaryKey, ts.Cols[k].Name)
		}
		for i, col := range ts.Cols {
			st.Columns = append(st.Columns, connector.Column{Name: col.Name, Type: ts.ColTypes[i], Nullable: ts.Nullable[i]})
		}
		if len(ts.PK) == 0 {
			st.Note = "no primary key: events have no key and the snapshot of this table cannot resume mid-table (it restarts the table)"
		}
		out = append(out, st)
	}
	return out, nil
}
