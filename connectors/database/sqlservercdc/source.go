// Package sqlservercdc is the sqlserver-cdc source: it reads SQL Server's
// own Change Data Capture, the change tables the capture job fills from
// the transaction log, through cdc.fn_cdc_get_all_changes_<instance>
// between LSNs, after a chunked, resumable snapshot. The committed
// position is the last change's commit LSN and sequence value; a position
// CDC cleanup already removed is reported and answered as snapshot_mode
// says, never skipped silently.
package sqlservercdc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
)

const connectorName = "sqlserver-cdc"

// Metric names this source reports.
const (
	metricEvents       = "sqlserver_cdc.events"
	metricSnapshotRows = "sqlserver_cdc.snapshot_rows"
	metricPolls        = "sqlserver_cdc.polls"
	metricLost         = "sqlserver_cdc.positions_lost"
	metricSnapshotLeft = "sqlserver_cdc.snapshot_rows_left_to_stream"
	metricCaptureLag   = "sqlserver_cdc.snapshot_capture_waits_expired"
)

func init() {
	catalog.RegisterSource[Config](catalog.Meta{
		Name:        connectorName,
		Aliases:     []string{"mssql-cdc"},
		Category:    catalog.Database,
		Subcategory: "CDC",
		Description: "Reads SQL Server Change Data Capture (cdc.fn_cdc_get_all_changes_*) between LSNs after a chunked, resumable snapshot; exact types, LSN resume, capture-instance switches, loud handling of positions CDC cleanup removed.",
		Tags:        []string{"sqlserver", "mssql", "cdc", "azure-sql", "snapshot", "lsn"},
		Metrics:     []string{metricEvents, metricSnapshotRows, metricPolls, metricLost, metricSnapshotLeft, metricCaptureLag},
	}, New)
}

// Source is the sqlserver-cdc source.
type Source struct {
	cfg  *Config
	open func(ctx context.Context) (store, error)
	now  func() time.Time

	mu sync.Mutex
	// snapshotted is set once a snapshot finished in this process, so
	// that snapshot_mode always does not repeat it on every restart of
	// Read.
	snapshotted bool
	name        string
}

// New builds the source from a validated config; it connects in Read.
func New(_ context.Context, cfg *Config) (connector.Source, error) {
	return &Source{cfg: cfg, now: time.Now, open: func(ctx context.Context) (store, error) { return openSQL(ctx, cfg) }}, nil
}

// table is a captured table: its columns, key and capture instances
// (oldest first: after a schema change a table has two for a while).
type table struct {
	name      string
	stream    string
	cols      []column
	byName    map[string]*column
	key       []string
	instances []captureInstance
	colsJSON  string
}

// loadTables reads the captured tables: CDC-enabled tables of the schema
// that include_tables/exclude_tables keep. A table whose change table the
// user cannot read is an error naming the permission.
func (s *Source) loadTables(ctx context.Context, st store, known map[string]*table) (map[string]*table, []string, error) {
	cis, err := st.CaptureInstances(ctx, s.cfg.Schema)
	if err != nil {
		return nil, nil, fmt.Errorf("sqlserver-cdc: reading cdc.change_tables: %w", err)
	}
	out := map[string]*table{}
	for _, ci := range cis {
		if !s.cfg.captured(ci.Table) {
			continue
		}
		if !ci.Readable {
			return nil, nil, connector.Fatal(fmt.Errorf("sqlserver-cdc: %s.%s: no SELECT permission on the change table cdc.%s_CT of capture instance %s (grant it, or membership of the instance's gating role)", s.cfg.Schema, ci.Table, ci.Name, ci.Name))
		}
		t := out[ci.Table]
		if t == nil {
			t = &table{name: ci.Table, stream: s.cfg.Schema + "." + ci.Table}
			out[ci.Table] = t
		}
		t.instances = append(t.instances, ci)
	}
	names := make([]string, 0, len(out))
	for name, t := range out {
		names = append(names, name)
		// The key is the newest instance's index columns (the primary
		// key or the unique index named when CDC was enabled).
		t.key = t.instances[len(t.instances)-1].Index
		if old := known[name]; old != nil && sameInstances(old.instances, t.instances) {
			t.cols, t.byName, t.colsJSON = old.cols, old.byName, old.colsJSON
			continue
		}
		cols, err := st.Columns(ctx, s.cfg.Schema, name)
		if err != nil {
			return nil, nil, fmt.Errorf("sqlserver-cdc: columns of %s: %w", t.stream, err)
		}
		t.cols = cols
		t.byName = make(map[string]*column, len(cols))
		ec := make([]events.Column, len(cols))
		for i := range cols {
			t.byName[cols[i].Name] = &t.cols[i]
			ec[i] = events.Column{Name: cols[i].Name, Type: cols[i].declared(), NotNull: !cols[i].Nullable}
		}
		t.colsJSON = string(events.AppendColumns(nil, ec))
	}
	sort.Strings(names)
	return out, names, nil
}

func sameInstances(a, b []captureInstance) bool {
	return slices.EqualFunc(a, b, func(x, y captureInstance) bool { return x.Name == y.Name && slices.Equal(x.Columns, y.Columns) })
}

// Read snapshots as snapshot_mode says and then polls the change tables
// until ctx is done.
func (s *Source) Read(ctx context.Context, resume []byte, emit connector.Emitter) error {
	rt := connector.RuntimeFrom(ctx)
	s.mu.Lock()
	s.name = rt.Name
	done := s.snapshotted
	s.mu.Unlock()
	pos, err := parsePosition(resume)
	if err != nil {
		return connector.Fatal(err)
	}
	st, err := s.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if on, err := st.DatabaseCDC(ctx); err != nil {
		return fmt.Errorf("sqlserver-cdc: %w", err)
	} else if !on {
		return connector.Fatal(fmt.Errorf("sqlserver-cdc: CDC is not enabled on database %s (run EXEC sys.sp_cdc_enable_db in it)", s.cfg.Database))
	}
	tables, names, err := s.loadTables(ctx, st, nil)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return connector.Fatal(fmt.Errorf("sqlserver-cdc: no CDC-enabled table in schema %s matches include_tables/exclude_tables (enable one with sys.sp_cdc_enable_table)", s.cfg.Schema))
	}
	mode := s.cfg.SnapshotMode
	switch {
	case pos != nil && pos.Snap != nil:
		// A snapshot was under way: it goes on after its last chunk.
	case pos == nil && (mode == "never"):
		pos = &position{Tables: names}
	case pos == nil && mode == "schema_only":
		at, err := st.MaxLSN(ctx)
		if err != nil {
			return err
		}
		pos = &position{point: point{LSN: at, Seq: maxSeq}, Tables: names}
		batch := make([]*events.Event, 0, len(names))
		for _, n := range names {
			batch = append(batch, s.schemaEvent(tables[n], pos))
		}
		if err := emit.Emit(ctx, batch); err != nil {
			return err
		}
	case pos == nil || (mode == "always" && !done):
		pos = &position{Snap: &snapState{Tables: names, Full: true}}
	}
	// A stored position, or the end of a snapshot, that CDC cleanup has
	// already passed is said loudly and answered as snapshot_mode says.
	// A new snapshot may itself be outrun by cleanup; after a few rounds
	// that is an error.
	for round := 0; ; round++ {
		if pos.Snap != nil {
			if pos, err = s.snapshot(ctx, st, emit, pos, tables); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			s.mu.Lock()
			s.snapshotted = true
			s.mu.Unlock()
			if mode == "initial_only" {
				return nil
			}
		}
		lost := lostTables(pos, tables)
		if len(lost) == 0 {
			break
		}
		rt.Counter(metricLost, "Times the stored position was below what CDC cleanup kept.").Inc()
		msg := fmt.Sprintf("sqlserver-cdc: CDC cleanup already removed changes after the position %s for %s (the change tables now start at %s): rows changed in between cannot be read from CDC", pos.LSN, strings.Join(lost, ", "), minLSNs(tables, lost))
		switch {
		case round >= 3:
			return fmt.Errorf("%s, again after %d snapshots: CDC cleanup runs faster than a snapshot (raise the capture instance's retention)", msg, round)
		case mode == "when_needed":
			rt.Logger().Error(msg+"; taking a new snapshot of every table (snapshot_mode when_needed)", "lost_tables", lost)
			pos = &position{Snap: &snapState{Tables: names, Full: true}}
		case mode == "recovery":
			rt.Logger().Error(msg+"; taking a new snapshot of those tables and streaming the others on (snapshot_mode recovery)", "lost_tables", lost)
			p := pos.clone()
			p.Snap = &snapState{Tables: lost}
			pos = p
		default:
			return connector.Fatal(fmt.Errorf("%s. snapshot_mode %s does not re-snapshot: set snapshot_mode when_needed or recovery, or delete the stored position to start over", msg, mode))
		}
	}
	if mode == "initial_only" {
		return nil // a snapshot finished before this start: nothing to do
	}
	err = s.stream(ctx, st, emit, pos, tables)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// schemaEvent describes a captured table: its columns with their
// declared types and key, and the capture instances it is read from.
func (s *Source) schemaEvent(t *table, pos *position) *events.Event {
	type col struct {
		Name       string `json:"name"`
		Type       string `json:"type"`
		Nullable   bool   `json:"nullable"`
		PrimaryKey bool   `json:"primary_key,omitempty"`
	}
	body := struct {
		Database         string   `json:"database"`
		Schema           string   `json:"schema"`
		Table            string   `json:"table"`
		CaptureInstances []string `json:"capture_instances"`
		Columns          []col    `json:"columns"`
	}{Database: s.cfg.Database, Schema: s.cfg.Schema, Table: t.name}
	for _, ci := range t.instances {
		body.CaptureInstances = append(body.CaptureInstances, ci.Name)
	}
	for _, c := range t.cols {
		body.Columns = append(body.Columns, col{Name: c.Name, Type: c.declared(), Nullable: c.Nullable, PrimaryKey: slices.Contains(t.key, c.Name)})
	}
	raw, _ := json.Marshal(body)
	ns := s.cfg.Schema
	return &events.Event{
		Type: events.Schema, Stream: t.stream, Namespace: &ns, Timestamp: s.now().UTC(), Data: events.RawPayload(raw),
		Metadata: events.Metadata{Position: pos.encode()},
		Source:   &events.SourceInfo{Connector: connectorName, Name: s.name, Database: s.cfg.Database, Schema: s.cfg.Schema, Table: t.name, Columns: t.colsJSON},
	}
}

// lostTables lists the tables captured at the stored position whose
// change tables no longer reach back to it: their oldest available LSN
// (fn_cdc_get_min_lsn, raised by cleanup) is above the position, so
// changes in between may be gone. Tables enabled since are not lost.
func lostTables(pos *position, tables map[string]*table) []string {
	var lost []string
	for _, name := range pos.Tables {
		t := tables[name]
		if t == nil {
			continue
		}
		from := pos.LSN
		if f, ok := pos.Floors[name]; ok && f.cmp(from) > 0 {
			from = f
		}
		if b, ok := pos.Begins[name]; ok && b.cmp(from) > 0 {
			from = b
		}
		// An instance whose start is not established (zero) holds
		// nothing yet and says nothing about what cleanup removed.
		var oldest lsn
		for _, ci := range t.instances {
			if !ci.MinLSN.isZero() && (oldest.isZero() || ci.MinLSN.cmp(oldest) < 0) {
				oldest = ci.MinLSN
			}
		}
		// A zero position is the start of everything CDC ever captured
		// (snapshot_mode never, or a snapshot taken before any change
		// was captured): nothing before it can be lost.
		if !from.isZero() && !oldest.isZero() && oldest.cmp(from) > 0 {
			lost = append(lost, name)
		}
	}
	return lost
}

func minLSNs(tables map[string]*table, names []string) string {
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, n+" "+tables[n].instances[0].MinLSN.String())
	}
	return strings.Join(parts, ", ")
}

// snapshot reads the tables of pos.Snap in key-ordered chunks, one batch
// per chunk, each event carrying the position of its row so that a
// restart resumes after the last chunk emitted.
//
// It is consistent with the LSN it starts at, At (the change tables' end
// then): the stream delivers every change after At, and each chunk is
// reconciled with the change tables so that a row arrives once. After a
// chunk is read, the source waits until the capture job has passed the
// moment of the read (reconcile), reads the changes of the snapshot's tables
// from At up to the max LSN then, and leaves out of the chunk every row
// with a change there: the stream delivers it, and each change carries
// the row's state. A row changed after its chunk was read comes as a
// snapshot-read with the state before and then as its changes.
func (s *Source) snapshot(ctx context.Context, st store, emit connector.Emitter, pos *position, tables map[string]*table) (*position, error) {
	rt := connector.RuntimeFrom(ctx)
	rows := rt.Counter(metricSnapshotRows, "Rows read by snapshots.")
	left := rt.Counter(metricSnapshotLeft, "Snapshot rows left out because the stream delivers a change of them.")
	pos = pos.clone()
	snap := pos.Snap
	if snap.At == nil {
		at, err := st.MaxLSN(ctx)
		if err != nil {
			return nil, fmt.Errorf("sqlserver-cdc: snapshot: %w", err)
		}
		snap.At = &at
		// A table whose capture instance starts above At (enabled just
		// now, its start not yet passed by the capture job) has nothing
		// captured in between: its change tables are complete from
		// their start.
		for _, n := range snap.Tables {
			if t := tables[n]; t != nil {
				if m := t.instances[0].MinLSN; m.cmp(at) > 0 {
					if snap.Begins == nil {
						snap.Begins = map[string]lsn{}
					}
					snap.Begins[n] = m
				}
			}
		}
	}
	at := *snap.At
	rec := &reconciler{readTo: at, keys: map[string]map[string]bool{}}
	// finish is the position after the snapshot: a full one restarts the
	// stream at its LSN, a partial one (recovery, a table enabled while
	// streaming) gives its tables floors.
	finish := func() *position {
		if snap.Full {
			names := make([]string, 0, len(tables))
			for n := range tables {
				names = append(names, n)
			}
			sort.Strings(names)
			return &position{point: point{LSN: at, Seq: maxSeq}, Tables: names, Begins: maps.Clone(snap.Begins)}
		}
		p := pos.clone()
		if p.Floors == nil {
			p.Floors = map[string]lsn{}
		}
		for n, b := range snap.Begins {
			if p.Begins == nil {
				p.Begins = map[string]lsn{}
			}
			p.Begins[n] = b
		}
		for _, n := range snap.Tables {
			p.Floors[n] = at
			if !slices.Contains(p.Tables, n) {
				p.Tables = append(p.Tables, n)
			}
		}
		sort.Strings(p.Tables)
		p.Snap = nil
		return p
	}
	// lastTable reports whether no table after index i is left to read.
	lastTable := func(i int) bool {
		for _, n := range snap.Tables[i+1:] {
			if tables[n] != nil {
				return false
			}
		}
		return true
	}
	for ; snap.Index < len(snap.Tables); snap.Index, snap.After, snap.Done = snap.Index+1, nil, 0 {
		t := tables[snap.Tables[snap.Index]]
		if t == nil {
			continue // no longer captured
		}
		task := "snapshot " + t.stream
		for {
			// One row more than a chunk says whether the chunk is the
			// table's last; its last event then carries the position
			// after the table (after the snapshot, for the last table),
			// so that a restart does not read the table's end again.
			q := chunkQuery{Schema: s.cfg.Schema, Table: t.name, Key: t.key, Limit: s.cfg.SnapshotChunkSize + 1}
			// The columns the newest capture instance captures, so that a
			// snapshot row has the columns its later changes will have.
			q.Cols = t.instances[len(t.instances)-1].Columns
			if len(q.Cols) == 0 {
				for _, c := range t.cols {
					q.Cols = append(q.Cols, c.Name)
				}
			}
			if snap.After != nil {
				after, err := keyParams(t, snap.After)
				if err != nil {
					return nil, connector.Fatal(err)
				}
				q.After = after
			}
			rs, err := st.Chunk(ctx, q)
			if err != nil {
				return nil, fmt.Errorf("sqlserver-cdc: snapshot of %s: %w", t.stream, err)
			}
			// A chunk without rows, or of a table without key columns,
			// has nothing to leave out: no wait for the capture job.
			var changed map[string]map[string]bool
			if len(rs.Rows) > 0 && len(t.key) > 0 {
				if changed, err = s.reconcile(ctx, st, rec, snap, tables); err != nil {
					return nil, err
				}
			}
			rowsOut := rs.Rows
			more := len(t.key) > 0 && len(rowsOut) > s.cfg.SnapshotChunkSize
			if more {
				rowsOut = rowsOut[:s.cfg.SnapshotChunkSize]
			}
			batch := make([]*events.Event, 0, len(rowsOut))
			now := s.now().UTC()
			for i, r := range rowsOut {
				obj, key, keyVals, err := rowJSON(t, rs.Cols, r)
				if err != nil {
					return nil, connector.Fatal(fmt.Errorf("sqlserver-cdc: snapshot of %s: %w", t.stream, err))
				}
				snap.After = keyVals
				snap.Done++
				if changed[t.name][string(key)] && key != nil {
					left.Inc()
					continue
				}
				posText := ""
				switch {
				case i < len(rowsOut)-1 || more:
					posText = pos.encode()
				case lastTable(snap.Index):
					posText = finish().encode()
				default:
					next := pos.clone()
					next.Snap.Index, next.Snap.After, next.Snap.Done = snap.Index+1, nil, 0
					posText = next.encode()
				}
				ns := s.cfg.Schema
				batch = append(batch, &events.Event{
					Type: events.SnapshotRead, Stream: t.stream, Namespace: &ns, Timestamp: now,
					Data: events.RawPayload(obj), Key: key,
					Metadata: events.Metadata{Position: posText},
					Source:   &events.SourceInfo{Connector: connectorName, Name: s.name, Database: s.cfg.Database, Schema: s.cfg.Schema, Table: t.name, Snapshot: true, Commit: at.String(), Columns: t.colsJSON},
				})
			}
			if len(batch) > 0 {
				if err := emit.Emit(ctx, batch); err != nil {
					return nil, err
				}
				rows.Add(uint64(len(batch)))
				rt.Progress(task, snap.Done, -1)
			}
			if !more {
				break
			}
		}
		delete(rec.keys, t.name)
		rt.Done(task)
	}
	return finish(), nil
}

// reconciler holds the keys of the snapshot's tables that changed after
// the snapshot's LSN: their rows come from the stream. It is rebuilt
// after a restart by reading the change tables from the snapshot's LSN
// again (nothing of it is stored in the position).
type reconciler struct {
	readTo lsn                        // change tables read up to here
	keys   map[string]map[string]bool // table -> keys (JSON) changed in (At, readTo]
	// noWait is set once the capture job did not pass a chunk's read in
	// time: the rest of the snapshot does not wait again.
	noWait bool
}

// captureSlack covers tran_end_time's resolution (datetime: 1/300 s) when
// the commit times of the capture job's entries are compared with the
// server clock read after a chunk.
const captureSlack = 10 * time.Millisecond

// reconcile is called after a chunk was read. It waits until the capture
// job has read the log past the moment of the read, so that every
// transaction the chunk can contain has its changes in the change tables
// below the max LSN; then it reads the changes of the snapshot's
// remaining tables from where it last read up to that max LSN and
// returns the keys changed since the snapshot's LSN.
//
// The wait has two steps. First until the newest cdc.lsn_time_mapping
// entry has a time after the read. That entry is either a transaction
// committed after the read (the job reads the log in order, so every
// commit before it is captured: done) or an entry the job logs in quiet
// periods, whose time says when it was logged, not how far its log scan
// reached: a commit just before the read may lie beyond that scan. So,
// second, until one more entry follows: the scan that logged it began
// after the first entry was logged, after the read, and read the log
// from where the previous one stopped to beyond every commit before the
// read. On a busy database the second entry follows at once; on a quiet
// one it costs one more capture cycle.
func (s *Source) reconcile(ctx context.Context, st store, rec *reconciler, snap *snapState, tables map[string]*table) (map[string]map[string]bool, error) {
	c, err := st.Capture(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlserver-cdc: snapshot: reading the capture job's progress: %w", err)
	}
	wait := time.Duration(s.cfg.SnapshotCaptureWaitSecs) * time.Second
	if !rec.noWait && wait > 0 {
		readTime := c.Now
		readAt := readTime.Add(captureSlack)
		deadline := time.Now().Add(wait)
		// passed is the first entry seen with a time after the read; the
		// wait ends at the next entry after it.
		var passed *lsn
		for passed == nil || c.Max.cmp(*passed) <= 0 {
			if passed == nil && c.MaxTime.After(readAt) {
				m := c.Max
				passed = &m
				continue
			}
			if time.Now().After(deadline) {
				rec.noWait = true
				rt := connector.RuntimeFrom(ctx)
				rt.Counter(metricCaptureLag, "Snapshot chunks the capture job did not catch up with in snapshot_capture_wait_secs.").Inc()
				rt.Logger().Warn(fmt.Sprintf("sqlserver-cdc: the capture job has not passed %s (server time after a snapshot chunk was read) within %s; its newest entry is %s at %s. Is SQL Server Agent running? The snapshot goes on without waiting: a row changed shortly before its chunk was read can arrive both as a snapshot row and as its change",
					readTime.Format(time.DateTime+".000"), wait, c.Max, c.MaxTime.Format(time.DateTime+".000")))
				break
			}
			timer := time.NewTimer(s.cfg.poll())
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil, ctx.Err()
			case <-timer.C:
			}
			if c, err = st.Capture(ctx); err != nil {
				return nil, fmt.Errorf("sqlserver-cdc: snapshot: reading the capture job's progress: %w", err)
			}
		}
	}
	if c.Max.cmp(rec.readTo) <= 0 {
		return rec.keys, nil
	}
	rest := map[string]*table{}
	unset := false
	for _, n := range snap.Tables[snap.Index:] {
		if t := tables[n]; t != nil && len(t.key) > 0 {
			rest[n] = t
			for _, ci := range t.instances {
				unset = unset || ci.MinLSN.isZero()
			}
		}
	}
	// A capture instance enabled just before the snapshot may not have
	// its start established yet (fn_cdc_get_min_lsn is zero until the
	// capture job has got to it); its changes cannot be read until it
	// has, so the starts are read again.
	if unset {
		cis, err := st.CaptureInstances(ctx, s.cfg.Schema)
		if err != nil {
			return nil, fmt.Errorf("sqlserver-cdc: snapshot: reading cdc.change_tables: %w", err)
		}
		for _, ci := range cis {
			if t := rest[ci.Table]; t != nil {
				for i := range t.instances {
					if t.instances[i].Name == ci.Name {
						t.instances[i].MinLSN = ci.MinLSN
					}
				}
			}
		}
		// A start now known above the snapshot's LSN is where the
		// table's changes begin (see snapshot).
		for n, t := range rest {
			if m := t.instances[0].MinLSN; m.cmp(*snap.At) > 0 {
				if snap.Begins == nil {
					snap.Begins = map[string]lsn{}
				}
				if _, ok := snap.Begins[n]; !ok {
					snap.Begins[n] = m
				}
			}
		}
	}
	changes, err := s.collect(ctx, st, &position{point: point{LSN: rec.readTo, Seq: maxSeq}}, rest, c.Max)
	if err != nil {
		return nil, fmt.Errorf("sqlserver-cdc: snapshot: %w", err)
	}
	for _, ch := range changes {
		m := rec.keys[ch.t.name]
		if m == nil {
			m = map[string]bool{}
			rec.keys[ch.t.name] = m
		}
		m[string(ch.key)] = true
	}
	rec.readTo = c.Max
	return rec.keys, nil
}

// keyParams turns the stored key of the last snapshot row back into query
// parameters: binary keys from base64, numbers and text as strings, which
// SQL Server converts to the column's type for the comparison.
func keyParams(t *table, vals []json.RawMessage) ([]any, error) {
	if len(vals) != len(t.key) {
		return nil, fmt.Errorf("sqlserver-cdc: the stored snapshot key has %d columns, %s has %d key columns now (delete the stored position to snapshot again)", len(vals), t.stream, len(t.key))
	}
	out := make([]any, len(vals))
	for i, raw := range vals {
		c := t.byName[t.key[i]]
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("sqlserver-cdc: stored snapshot key is corrupt: %w", err)
		}
		switch x := v.(type) {
		case string:
			if c != nil && (c.Type == "binary" || c.Type == "varbinary" || c.Type == "timestamp") {
				b, err := base64.StdEncoding.DecodeString(x)
				if err != nil {
					return nil, fmt.Errorf("sqlserver-cdc: stored snapshot key is corrupt: %w", err)
				}
				out[i] = b
				continue
			}
			out[i] = x
		case float64:
			out[i] = string(raw) // the exact text, not the float
		default:
			out[i] = x
		}
	}
	return out, nil
}

// rowJSON renders a row of the named columns as a JSON object, with the
// key object and the key values of the table.
func rowJSON(t *table, names []string, vals []any) (obj, key []byte, keyVals []json.RawMessage, err error) {
	obj = append(obj, '{')
	spans := make(map[string][2]int, len(t.key))
	for i, n := range names {
		if i > 0 {
			obj = append(obj, ',')
		}
		obj = events.AppendJSONString(obj, n)
		obj = append(obj, ':')
		c := t.byName[n]
		if c == nil {
			c = &column{Name: n} // a column dropped since: rendered by its Go type
		}
		start := len(obj)
		if obj, err = appendValue(obj, c, vals[i]); err != nil {
			return nil, nil, nil, fmt.Errorf("column %s: %w", n, err)
		}
		spans[n] = [2]int{start, len(obj)}
	}
	obj = append(obj, '}')
	if len(t.key) == 0 {
		return obj, nil, nil, nil
	}
	key = append(key, '{')
	for i, k := range t.key {
		sp, ok := spans[k]
		if !ok {
			return obj, nil, nil, nil
		}
		if i > 0 {
			key = append(key, ',')
		}
		key = events.AppendJSONString(key, k)
		key = append(key, ':')
		key = append(key, obj[sp[0]:sp[1]]...)
		keyVals = append(keyVals, json.RawMessage(obj[sp[0]:sp[1]:sp[1]]))
	}
	return obj, append(key, '}'), keyVals, nil
}

// change is one row change read from a change table.
type change struct {
	at            point
	commit        time.Time // zero when the change table did not say
	op            int
	t             *table
	before, after []byte
	key           []byte
}

// stream polls the change tables: every poll reads each capture instance
// from the position (or its oldest LSN) to sys.fn_cdc_get_max_lsn(),
// merges the tables' changes in log order and emits them.
func (s *Source) stream(ctx context.Context, st store, emit connector.Emitter, pos *position, tables map[string]*table) error {
	rt := connector.RuntimeFrom(ctx)
	evCount := rt.Counter(metricEvents, "Change events emitted.")
	polls := rt.Counter(metricPolls, "Polls of the change tables.")
	pos = pos.clone()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for first := true; ; first = false {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		polls.Inc()
		wait := s.cfg.poll()
		max, err := st.MaxLSN(ctx)
		if err != nil {
			return fmt.Errorf("sqlserver-cdc: fn_cdc_get_max_lsn: %w", err)
		}
		// The first poll looks at the tables even when nothing new was
		// captured: a table enabled while the source was down is
		// snapshotted at once.
		if first || max.cmp(pos.LSN) > 0 || (max == pos.LSN && pos.Seq != maxSeq) {
			// Capture instances come and go (a table enabled, a second
			// instance after a schema change): re-read them each poll.
			var names []string
			prev := tables
			if tables, names, err = s.loadTables(ctx, st, tables); err != nil {
				return err
			}
			// A table whose capture instances changed (a second one after
			// a schema change, the old one dropped) or that was enabled
			// since is announced with its columns before its changes.
			var schemas []*events.Event
			for _, n := range names {
				if old := prev[n]; old == nil || !sameInstances(old.instances, tables[n].instances) {
					schemas = append(schemas, s.schemaEvent(tables[n], pos))
				}
			}
			if len(schemas) > 0 {
				if err := emit.Emit(ctx, schemas); err != nil {
					return err
				}
			}
			// A table captured now that the position does not know (CDC
			// enabled for it since, while streaming or while the source
			// was down) is snapshotted like the others were, in chunks
			// reconciled with the change tables, unless snapshot_mode
			// takes no data snapshots; its changes after the snapshot's
			// LSN are streamed.
			known := names
			if fresh := newTables(pos, names); len(fresh) > 0 && s.snapshotsNewTables() {
				// A capture instance whose start the capture job has not
				// established yet (fn_cdc_get_min_lsn NULL) is left for a
				// later poll: its snapshot must know where its changes
				// begin.
				var ready, later []string
				for _, n := range fresh {
					if tables[n].instances[0].MinLSN.isZero() {
						later = append(later, n)
					} else {
						ready = append(ready, n)
					}
				}
				if len(ready) > 0 {
					rt.Logger().Info("sqlserver-cdc: snapshotting tables enabled for CDC since the position", "tables", ready)
					p := pos.clone()
					p.Snap = &snapState{Tables: ready}
					if pos, err = s.snapshot(ctx, st, emit, p, tables); err != nil {
						return err
					}
				}
				known = slices.DeleteFunc(slices.Clone(names), func(n string) bool { return slices.Contains(later, n) })
			}
			pos.Tables = known
			changes, err := s.collect(ctx, st, pos, tables, max)
			if err != nil {
				return err
			}
			if len(changes) > 0 {
				// More may have come while these were published.
				wait = 0
			}
			for len(changes) > 0 {
				n := min(len(changes), s.cfg.MaxBatchSize)
				batch := make([]*events.Event, n)
				for i := range n {
					batch[i] = s.event(pos, &changes[i])
				}
				if err := emit.Emit(ctx, batch); err != nil {
					return err
				}
				evCount.Add(uint64(n))
				changes = changes[n:]
			}
			// Everything up to max is read; the committed position moves
			// with the next event.
			pos.point = point{LSN: max, Seq: maxSeq}
			for name, f := range pos.Floors {
				if f.cmp(max) <= 0 {
					delete(pos.Floors, name)
				}
			}
			for name, b := range pos.Begins {
				if b.cmp(max) <= 0 {
					delete(pos.Begins, name)
				}
			}
		}
		timer.Reset(wait)
	}
}

// newTables lists the captured tables the position does not know.
func newTables(pos *position, names []string) []string {
	var out []string
	for _, n := range names {
		if !slices.Contains(pos.Tables, n) {
			out = append(out, n)
		}
	}
	return out
}

// snapshotsNewTables says whether a table enabled for CDC after the
// source started gets a data snapshot: not with never and schema_only,
// which take none (its changes are streamed from its capture instance's
// start).
func (s *Source) snapshotsNewTables() bool {
	return s.cfg.SnapshotMode != "never" && s.cfg.SnapshotMode != "schema_only"
}

// collect reads every instance's changes after pos up to max, in log
// order. Of a table with two capture instances, the older supplies the
// changes below the newer one's first LSN and the newer the rest, so a
// schema change loses and repeats nothing.
func (s *Source) collect(ctx context.Context, st store, pos *position, tables map[string]*table, max lsn) ([]change, error) {
	var out []change
	for _, t := range tables {
		floor, hasFloor := pos.Floors[t.name]
		for i, ci := range t.instances {
			lo := pos.LSN
			if hasFloor && floor.cmp(lo) > 0 {
				lo = floor
			}
			if ci.MinLSN.cmp(lo) > 0 {
				lo = ci.MinLSN
			}
			if lo.cmp(max) > 0 || ci.MinLSN.isZero() {
				continue // nothing captured in range (a NULL min LSN: the instance is empty)
			}
			// The newer instance takes over at its start; until the
			// capture job has established that start (zero), the older
			// instance supplies everything.
			var upper *lsn
			if i+1 < len(t.instances) && !t.instances[i+1].MinLSN.isZero() {
				upper = &t.instances[i+1].MinLSN
				if upper.cmp(lo) <= 0 {
					continue // the newer instance covers the whole range
				}
			}
			rs, err := st.Changes(ctx, ci.Name, lo, max)
			if err != nil {
				return nil, fmt.Errorf("sqlserver-cdc: reading cdc.fn_cdc_get_all_changes_%s from %s to %s: %w", ci.Name, lo, max, err)
			}
			cs, err := parseChanges(t, rs)
			if err != nil {
				return nil, fmt.Errorf("sqlserver-cdc: capture instance %s: %w", ci.Name, err)
			}
			for _, c := range cs {
				switch {
				case c.at.cmp(pos.point) <= 0:
				case hasFloor && c.at.LSN.cmp(floor) <= 0:
				case upper != nil && c.at.LSN.cmp(*upper) >= 0:
				default:
					out = append(out, c)
				}
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.cmp(out[j].at) < 0 })
	return out, nil
}

// The metadata columns of fn_cdc_get_all_changes_<capture_instance>.
const (
	colStartLSN = "__$start_lsn"
	colSeqval   = "__$seqval"
	colOp       = "__$operation"
	colMask     = "__$update_mask"
	// colCommitTime is not the function's: the query adds the commit
	// time of the row's transaction under this name.
	colCommitTime = "__$commit_time"
)

// parseChanges reads a result of fn_cdc_get_all_changes_ with row filter
// 'all update old': __$operation 1 delete, 2 insert, 3 the row before an
// update and 4 after it; the two images of an update share start LSN and
// sequence value and become one update event.
func parseChanges(t *table, rs *resultSet) ([]change, error) {
	iLSN, iSeq, iOp, iTime := rs.index(colStartLSN), rs.index(colSeqval), rs.index(colOp), rs.index(colCommitTime)
	if iLSN < 0 || iSeq < 0 || iOp < 0 {
		return nil, fmt.Errorf("the result has no %s, %s and %s columns (columns: %v)", colStartLSN, colSeqval, colOp, rs.Cols)
	}
	var dataNames []string
	var dataIdx []int
	for i, n := range rs.Cols {
		if !strings.HasPrefix(n, "__$") {
			dataNames = append(dataNames, n)
			dataIdx = append(dataIdx, i)
		}
	}
	vals := make([]any, len(dataIdx))
	var out []change
	for ri, r := range rs.Rows {
		l, err1 := lsnOf(asBytes(r[iLSN]))
		sq, err2 := lsnOf(asBytes(r[iSeq]))
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("row %d: %w", ri, err)
		}
		op := asInt(r[iOp])
		var commit time.Time
		if iTime >= 0 {
			commit, _ = r[iTime].(time.Time)
		}
		for k, i := range dataIdx {
			vals[k] = r[i]
		}
		obj, key, _, err := rowJSON(t, dataNames, vals)
		if err != nil {
			return nil, fmt.Errorf("change at %s: %w", l, err)
		}
		at := point{LSN: l, Seq: sq}
		switch op {
		case 1:
			out = append(out, change{at: at, commit: commit, op: 1, t: t, before: obj, key: key})
		case 2:
			out = append(out, change{at: at, commit: commit, op: 2, t: t, after: obj, key: key})
		case 3:
			out = append(out, change{at: at, commit: commit, op: 4, t: t, before: obj, key: key})
		case 4:
			if n := len(out); n > 0 && out[n-1].op == 4 && out[n-1].at == at && out[n-1].after == nil {
				out[n-1].after, out[n-1].key = obj, key
				continue
			}
			out = append(out, change{at: at, commit: commit, op: 4, t: t, after: obj, key: key})
		default:
			return nil, fmt.Errorf("change at %s: unknown __$operation %d", l, op)
		}
	}
	return out, nil
}

func asBytes(v any) []byte {
	b, _ := v.([]byte)
	return b
}

// event makes the change event; its position is the change's point with
// the stream's tables and floors.
func (s *Source) event(pos *position, c *change) *events.Event {
	p := position{point: c.at, Tables: pos.Tables, Floors: pos.Floors, Begins: pos.Begins}
	ns := s.cfg.Schema
	e := &events.Event{
		Stream: c.t.stream, Namespace: &ns, Timestamp: s.now().UTC(), Key: c.key,
		Metadata: events.Metadata{Position: p.encode(), TransactionID: c.at.LSN.String()},
		Source: &events.SourceInfo{Connector: connectorName, Name: s.name, Database: s.cfg.Database, Schema: s.cfg.Schema, Table: c.t.name,
			Position: c.at.LSN.String() + ":" + c.at.Seq.String(), Commit: c.at.LSN.String(), Columns: c.t.colsJSON},
	}
	if !c.commit.IsZero() {
		ts := c.commit.UTC()
		e.Source.CommitTS = &ts
	}
	switch c.op {
	case 1:
		e.Type, e.Data = events.Delete, events.RawPayload(c.before)
	case 2:
		e.Type, e.Data = events.Insert, events.RawPayload(c.after)
	default:
		before, after := c.before, c.after
		if before == nil {
			before = []byte("null")
		}
		if after == nil {
			after = []byte("null")
		}
		d := make([]byte, 0, len(before)+len(after)+22)
		d = append(d, `{"before":`...)
		d = append(d, before...)
		d = append(d, `,"after":`...)
		d = append(d, after...)
		d = append(d, '}')
		e.Type, e.Data = events.Update, events.RawPayload(d)
	}
	return e
}

// Check connects, and checks that CDC is on for the database and that the
// captured tables' change tables can be read.
func (s *Source) Check(ctx context.Context) error {
	st, err := s.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if on, err := st.DatabaseCDC(ctx); err != nil {
		return err
	} else if !on {
		return fmt.Errorf("sqlserver-cdc: CDC is not enabled on database %s (run EXEC sys.sp_cdc_enable_db in it)", s.cfg.Database)
	}
	_, names, err := s.loadTables(ctx, st, nil)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return fmt.Errorf("sqlserver-cdc: no CDC-enabled table in schema %s matches include_tables/exclude_tables", s.cfg.Schema)
	}
	_, err = st.MaxLSN(ctx)
	return err
}

// Discover lists the schema's tables and says why one cannot be read.
func (s *Source) Discover(ctx context.Context) ([]connector.Stream, error) {
	st, err := s.open(ctx)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	on, err := st.DatabaseCDC(ctx)
	if err != nil {
		return nil, err
	}
	tabs, err := st.Tables(ctx, s.cfg.Schema)
	if err != nil {
		return nil, err
	}
	var cis []captureInstance
	if on {
		if cis, err = st.CaptureInstances(ctx, s.cfg.Schema); err != nil {
			return nil, err
		}
	}
	var out []connector.Stream
	for _, tr := range tabs {
		str := connector.Stream{Namespace: s.cfg.Schema, Name: tr.Name, RowEstimate: tr.RowEstimate}
		cols, err := st.Columns(ctx, s.cfg.Schema, tr.Name)
		if err != nil {
			return nil, err
		}
		for _, c := range cols {
			str.Columns = append(str.Columns, connector.Column{Name: c.Name, Type: c.declared(), Nullable: c.Nullable})
		}
		var mine []captureInstance
		for _, ci := range cis {
			if ci.Table == tr.Name {
				mine = append(mine, ci)
			}
		}
		if len(mine) > 0 {
			str.PrimaryKey = mine[len(mine)-1].Index
		}
		switch {
		case !on:
			str.Note = fmt.Sprintf("CDC is not enabled on database %s (sys.sp_cdc_enable_db)", s.cfg.Database)
		case !tr.TrackedCDC || len(mine) == 0:
			str.Note = "CDC is not enabled for this table (sys.sp_cdc_enable_table)"
		case !s.cfg.captured(tr.Name):
			str.Note = "left out by include_tables/exclude_tables"
		default:
			var notes []string
			for _, ci := range mine {
				if !ci.Readable {
					notes = append(notes, fmt.Sprintf("no SELECT permission on the change table cdc.%s_CT (capture instance %s, gated by its role)", ci.Name, ci.Name))
				}
			}
			str.Note = strings.Join(notes, "; ")
		}
		out = append(out, str)
	}
	return out, nil
}
