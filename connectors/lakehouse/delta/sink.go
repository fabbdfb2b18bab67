// Package deltalake is the Delta Lake sink: each batch of events becomes
// one commit of the table's transaction log, written here per the Delta
// protocol (no Delta library is involved): Parquet data files in
// Hive-style partition folders, then _delta_log/<version>.json created
// only if absent, the storage's atomic primitive for a log that many
// writers append to. Losing the race for a version re-reads the log and
// tries the next one. A txn action per commit records what the batch
// holds, so a redelivered batch is skipped instead of written twice.
package deltalake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/objstore"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/tablerow"
)

// Metric names, as the reference documents them.
const (
	metricRecords = "delta.records_written"
	metricCommits = "delta.commits_success"
	metricBytes   = "delta.bytes_written"
	metricLatency = "delta.commit_latency_us"
)

func init() {
	catalog.RegisterSink[Config](catalog.Meta{
		Name:        "delta-lake",
		Aliases:     []string{"delta"},
		Category:    catalog.Lakehouse,
		Subcategory: "Table",
		Description: "Writes batches of events to a Delta Lake table (local, S3, GCS, Azure) as atomic commits of its transaction log with Parquet data files, creating and evolving the table from the rows, partitioning Hive-style, and skipping redelivered batches by their txn actions.",
		Tags:        []string{"delta", "delta-lake", "lakehouse", "parquet", "table", "acid", "data-lake"},
		Metrics:     []string{metricRecords, metricCommits, metricBytes, metricLatency},
		// Deployed as a function, it is granted its table's bucket.
		StorageURIKey: "table_uri",
	}, New)
}

// Sink commits batches to one Delta table.
type Sink struct {
	cfg Config
	st  objstore.Store

	// mu serialises Writes: each one reads the log, then commits the
	// version after the one it read.
	mu   sync.Mutex
	snap *snapshot // the state after the last commit seen; nil until the first Write

	// beforeCommit, when set (tests), runs after the data files are
	// written and before the commit: another writer can commit then.
	beforeCommit func(attempt int)
	// backoff is the base of the exponential wait between commit attempts.
	backoff time.Duration
}

// New opens the table's storage; the log is read at the first Write.
func New(ctx context.Context, cfg *Config) (connector.Sink, error) { return newSink(ctx, cfg) }

func newSink(ctx context.Context, cfg *Config) (*Sink, error) {
	loc, err := objstore.ParseLocation(cfg.TableURI)
	if err != nil {
		return nil, connector.Fatal(fmt.Errorf("delta-lake: table_uri: %w", err))
	}
	st, err := objstore.Open(ctx, loc, objstore.Options{S3: cfg.S3, GCS: cfg.GCS, Azure: cfg.Azure})
	if err != nil {
		return nil, connector.Fatal(fmt.Errorf("delta-lake: %w", err))
	}
	return &Sink{cfg: *cfg, st: st, backoff: 100 * time.Millisecond}, nil
}

// BatchPolicy asks long-lived runners for batches of batch_size events,
// holding a partial batch at most flush_interval_secs.
func (s *Sink) BatchPolicy() (int, time.Duration) {
	return s.cfg.BatchSize, time.Duration(s.cfg.FlushIntervalSecs) * time.Second
}

// Check lists the table's log: the storage answers and lets us read.
func (s *Sink) Check(ctx context.Context) error {
	if _, err := s.st.List(ctx, logDir, "~"); err != nil {
		return fmt.Errorf("delta-lake: %s unreachable: %w", s.st.URL(), err)
	}
	return nil
}

// Close releases the storage client. Nothing is buffered.
func (s *Sink) Close(context.Context) error { return s.st.Close() }

// Write commits the batch as one Delta version before it returns. Rows the
// table already holds (a redelivery) are left out; rows that do not fit
// the table fail alone in a *connector.WriteError; losing the race for the
// next version is retried up to max_commit_retries times.
func (s *Sink) Write(ctx context.Context, batch []*events.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := connector.RuntimeFrom(ctx)
	name := rt.Name
	if name == "" {
		name = "delta-lake"
	}
	rows, failed := tablerow.Extract(batch, "delta-lake")
	var (
		written []writtenFile // data files of the last attempt
		sig     string        // what they hold
	)
	cleanup := func() {
		for _, f := range written {
			_ = s.st.Delete(context.WithoutCancel(ctx), f.key)
		}
		written = nil
	}
	for attempt := 0; ; attempt++ {
		start := time.Now()
		snap, err := loadSnapshot(ctx, s.st, s.snap)
		if err != nil {
			cleanup()
			return resilience.New(resilience.ClassOf(err), fmt.Errorf("delta-lake: reading the log of %s: %w", s.st.URL(), err))
		}
		s.snap = snap
		if err := checkProtocol(snap); err != nil {
			cleanup()
			return connector.Fatal(fmt.Errorf("delta-lake: %s: %w", s.st.URL(), err))
		}
		if snap.version < 0 && !s.cfg.AutoCreateTable {
			return resilience.New(resilience.NotFound, fmt.Errorf("delta-lake: no Delta table at %s and auto_create_table is false", s.st.URL()))
		}
		p, err := s.plan(snap, rows, failed, name)
		if err != nil {
			cleanup()
			return err
		}
		if len(p.rows) == 0 {
			cleanup()
			if p.skipped > 0 {
				rt.Logger().Info("delta-lake: batch already committed, skipped", "table", s.st.URL(), "records", p.skipped, "version", snap.version)
			}
			return p.result()
		}
		if p.sig != sig {
			// First attempt, or the winner's commit changed what this
			// batch writes (its schema, or rows it already holds): the
			// files are written anew.
			cleanup()
			if written, err = s.writeFiles(ctx, p); err != nil {
				cleanup()
				return err
			}
			sig = p.sig
		}
		if s.beforeCommit != nil {
			s.beforeCommit(attempt)
		}
		actions := p.actions(snap, written, name)
		next := snap.version + 1
		err = s.st.PutIfAbsent(ctx, commitKey(next), encodeCommit(actions))
		if err == nil {
			committed := snap.clone()
			for i := range actions {
				_ = committed.apply(&actions[i]) // our own schema parses
			}
			committed.version = next
			s.snap = committed
			var bytes int64
			for _, f := range written {
				bytes += f.add.Size
			}
			rt.Counter(metricRecords, "Records committed to the Delta table.").Add(uint64(len(p.rows)))
			rt.Counter(metricCommits, "Delta commits that succeeded (one per batch).").Inc()
			rt.Counter(metricBytes, "Bytes of Parquet data files committed.").Add(uint64(bytes))
			rt.Counter(metricLatency, "Microseconds spent committing batches, from reading the log to the committed version, summed.").Add(uint64(time.Since(start).Microseconds()))
			if next > 0 && next%checkpointInterval == 0 {
				if err := s.checkpoint(ctx, committed); err != nil {
					// The commit stands; readers replay a few more
					// JSON files until the next checkpoint.
					rt.Logger().Warn("delta-lake: writing the checkpoint failed", "table", s.st.URL(), "version", next, "err", err)
				}
			}
			return p.result()
		}
		if !errors.Is(err, objstore.ErrExists) {
			cleanup()
			return fmt.Errorf("delta-lake: committing version %d of %s: %w", next, s.st.URL(), err)
		}
		if attempt >= s.cfg.MaxCommitRetries {
			cleanup()
			return resilience.New(resilience.Connection, fmt.Errorf("delta-lake: version %d of %s was taken by another writer; still conflicting after %d retries", next, s.st.URL(), s.cfg.MaxCommitRetries))
		}
		rt.Logger().Info("delta-lake: another writer committed version first; re-reading the log and retrying", "table", s.st.URL(), "version", next, "attempt", attempt+1)
		wait := s.backoff << attempt
		wait += time.Duration(rand.Int64N(int64(wait)/2 + 1))
		select {
		case <-ctx.Done():
			cleanup()
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// checkProtocol refuses tables whose protocol asks for more than this
// writer does: reader version 1 (or 3 without reader features), writer
// version 2, or 7 with appendOnly and invariants as its only features;
// and columns with invariants, which it does not evaluate.
func checkProtocol(snap *snapshot) error {
	if snap.version < 0 {
		return nil
	}
	p := snap.protocol
	switch {
	case p.MinReaderVersion == 3 && len(p.ReaderFeatures) == 0:
	case p.MinReaderVersion > readerVersion:
		return fmt.Errorf("the table needs Delta reader version %d (features %v); this sink writes tables of reader version 1", p.MinReaderVersion, p.ReaderFeatures)
	}
	switch {
	case p.MinWriterVersion <= writerVersion:
	case p.MinWriterVersion == 7:
		for _, f := range p.WriterFeatures {
			if f != "appendOnly" && f != "invariants" {
				return fmt.Errorf("the table needs the Delta writer feature %q, which this sink does not implement", f)
			}
		}
	default:
		return fmt.Errorf("the table needs Delta writer version %d; this sink implements writer version 2", p.MinWriterVersion)
	}
	for _, f := range snap.schema.Fields {
		if _, ok := f.Metadata["delta.invariants"]; ok {
			return fmt.Errorf("column %q has invariants, which this sink does not check", f.Name)
		}
	}
	return nil
}

// plan is what one commit attempt writes.
type plan struct {
	create   bool
	schema   *structType
	evolved  bool // columns added
	partCols []string
	dataCols []dataCol
	rows     []prow
	groups   []*group
	txns     []txn
	failed   map[int]error
	skipped  int
	sig      string
	// retention is the txn retention property of a table to create.
	retention string
}

type prow struct {
	i    int
	vals []value // by table column index
}

type group struct {
	values []*string // partition values, by partCols
	rows   [][]value
}

func (p *plan) result() error {
	if len(p.failed) > 0 {
		return &connector.WriteError{Failed: p.failed}
	}
	return nil
}

// appID names the txn of one log partition's records: the sink, the topic
// (with the life of the topic when the transport names it) and the
// partition, whose offsets only grow (the scheme of
// kafka-delta-ingest). Batches delivered without offsets are named by
// their id instead (see batchID).
func appID(sink string, d *events.Position) string {
	id := sink + ":" + d.Topic + ":" + strconv.Itoa(int(d.Partition))
	if d.TopicID != "" {
		// A topic that starts its offsets over (created again, or the
		// in-memory topic of another local run) is another log.
		id += "@" + d.TopicID
	}
	return id
}

// plan leaves out what the table holds, fits the rows to the table's
// schema (adding columns), and groups them by partition.
func (s *Sink) plan(snap *snapshot, all []row, failedIn map[int]error, name string) (*plan, error) {
	p := &plan{failed: map[int]error{}}
	for i, err := range failedIn {
		p.failed[i] = err
	}
	// Effectively once.
	var keep, other []row
	high := map[string]int64{}
	for _, r := range all {
		d := r.Event.Delivered
		if d == nil || !d.HasOffset || d.Topic == "" {
			other = append(other, r)
			continue
		}
		id := appID(name, d)
		if t, ok := snap.txns[id]; ok && d.Offset <= t.Version {
			p.skipped++
			continue
		}
		if cur, ok := high[id]; !ok || d.Offset > cur {
			high[id] = d.Offset
		}
		keep = append(keep, r)
	}
	now := time.Now().UnixMilli()
	if len(other) > 0 {
		id := name + ":batch:" + tablerow.BatchID(other)
		if _, ok := snap.txns[id]; ok {
			p.skipped += len(other)
		} else {
			keep = append(keep, other...)
			p.txns = append(p.txns, txn{AppID: id, Version: int64(len(other)), LastUpdated: &now})
		}
	}
	ids := make([]string, 0, len(high))
	for id := range high {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		p.txns = append(p.txns, txn{AppID: id, Version: high[id], LastUpdated: &now})
	}
	if len(keep) == 0 {
		return p, nil
	}

	// Schema: the table's, plus nullable columns for new fields.
	p.create = snap.version < 0
	p.retention = s.cfg.TransactionRetention
	schema := &structType{Type: "struct"}
	if !p.create {
		schema.Fields = append(schema.Fields, snap.schema.Fields...)
		p.partCols = snap.meta.PartitionColumns
		if len(s.cfg.PartitionColumns) > 0 && !sameColumns(s.cfg.PartitionColumns, p.partCols) {
			return nil, connector.Fatal(fmt.Errorf("delta-lake: partition_columns %v differ from the partition columns %v of the table at %s", s.cfg.PartitionColumns, p.partCols, s.st.URL()))
		}
	}
	newTypes := map[string]string{}
	var newNames []string
	for _, r := range keep {
		for k, v := range r.Cells {
			if _, ok := schema.find(k); ok {
				continue
			}
			key := strings.ToLower(k)
			t, seen := newTypes[key]
			if !seen {
				newNames = append(newNames, k)
			}
			newTypes[key] = widen(t, inferType(v))
		}
	}
	if p.create {
		// A partition column the rows lack, or hold only nulls of, is a
		// string column.
		for _, c := range s.cfg.PartitionColumns {
			t, ok := newTypes[strings.ToLower(c)]
			if !ok {
				newNames = append(newNames, c)
			}
			if t == "" {
				newTypes[strings.ToLower(c)] = tString
			}
		}
	}
	sort.Strings(newNames)
	for _, n := range newNames {
		t := newTypes[strings.ToLower(n)]
		if t == "" {
			continue // only nulls so far: the column waits for a value
		}
		schema.Fields = append(schema.Fields, newField(n, t))
		p.evolved = !p.create
	}
	if p.create {
		for _, c := range s.cfg.PartitionColumns {
			i, _ := schema.find(c)
			p.partCols = append(p.partCols, schema.Fields[i].Name)
		}
	}
	p.schema = schema
	isPart := map[int]bool{}
	partIdx := make([]int, len(p.partCols))
	for j, c := range p.partCols {
		i, ok := schema.find(c)
		if !ok {
			return nil, connector.Fatal(fmt.Errorf("delta-lake: partition column %q is not in the schema of %s", c, s.st.URL()))
		}
		isPart[i], partIdx[j] = true, i
	}
	// Column types this sink cannot write (nil) take only nulls, written
	// as a null string column.
	types := make([]*dtype, len(schema.Fields))
	for i, f := range schema.Fields {
		types[i], _ = parseType(f.Type)
		if isPart[i] && types[i] != nil && !types[i].primitive() && types[i].name != "decimal" {
			return nil, connector.Fatal(fmt.Errorf("delta-lake: partition column %q of %s has the nested type %s", f.Name, s.st.URL(), f.typeName()))
		}
		if !isPart[i] {
			dt := types[i]
			if dt == nil {
				dt = &dtype{name: tString}
			}
			p.dataCols = append(p.dataCols, dataCol{name: f.Name, typ: dt.name, dt: dt, idx: i})
		}
	}

	// Rows: every cell converted to its column's type.
	groups := map[string]*group{}
	var sig strings.Builder
	for _, r := range keep {
		vals := make([]value, len(schema.Fields))
		for i := range vals {
			vals[i].null = true
		}
		var bad error
		for k, v := range r.Cells {
			i, ok := schema.find(k)
			if !ok {
				continue // a new column with only nulls
			}
			f := schema.Fields[i]
			t := types[i]
			if t == nil {
				if v != nil {
					bad = fmt.Errorf("column %q has type %s, which this sink does not write", f.Name, f.typeName())
					break
				}
				continue
			}
			cv, err := convertTo(v, t)
			if err != nil {
				bad = fmt.Errorf("column %q (%s): %v", f.Name, f.typeName(), err)
				break
			}
			vals[i] = cv
		}
		if bad == nil {
			for i, f := range schema.Fields {
				if !f.Nullable && vals[i].null {
					bad = fmt.Errorf("column %q is not nullable and the row has no value for it", f.Name)
					break
				}
			}
		}
		if bad != nil {
			p.failed[r.Index] = resilience.New(resilience.Schema, fmt.Errorf("delta-lake: %w", bad))
			continue
		}
		pv := make([]*string, len(p.partCols))
		var key strings.Builder
		for j, i := range partIdx {
			if str, ok := partitionString(vals[i], types[i]); ok {
				pv[j] = &str
				key.WriteString(strconv.Quote(str))
			} else {
				key.WriteString("null")
			}
			key.WriteByte(0)
		}
		g := groups[key.String()]
		if g == nil {
			g = &group{values: pv}
			groups[key.String()] = g
			p.groups = append(p.groups, g)
		}
		g.rows = append(g.rows, vals)
		p.rows = append(p.rows, prow{i: r.Index, vals: vals})
		fmt.Fprintf(&sig, "%d,", r.Index)
	}
	if len(p.rows) == 0 {
		// Every row failed: nothing is committed, not even the txn, so
		// that a fixed redelivery is written.
		p.txns = nil
		return p, nil
	}
	for _, c := range p.dataCols {
		fmt.Fprintf(&sig, "|%s:%s", c.name, c.typ)
	}
	fmt.Fprintf(&sig, "|%v", p.partCols)
	p.sig = sig.String()
	return p, nil
}

func sameColumns(a, b []string) bool {
	return slices.EqualFunc(a, b, strings.EqualFold)
}

// writtenFile is a data file written for a commit.
type writtenFile struct {
	key string
	add *addFile
}

// writeFiles writes one Parquet file per partition of the plan.
func (s *Sink) writeFiles(ctx context.Context, p *plan) ([]writtenFile, error) {
	var out []writtenFile
	for _, g := range p.groups {
		body, err := encodeData(p.dataCols, g.rows, s.cfg.Compression)
		if err != nil {
			return out, fmt.Errorf("delta-lake: encoding Parquet: %w", err)
		}
		key := dataFileKey(p.partCols, g.values, s.cfg.Compression)
		if err := s.st.Put(ctx, key, body); err != nil {
			return out, fmt.Errorf("delta-lake: writing %s/%s: %w", s.st.URL(), key, err)
		}
		pv := make(map[string]*string, len(p.partCols))
		for j, c := range p.partCols {
			pv[c] = g.values[j]
		}
		out = append(out, writtenFile{key: key, add: &addFile{
			Path: addPath(key), PartitionValues: pv, Size: int64(len(body)),
			ModificationTime: time.Now().UnixMilli(), DataChange: true,
			Stats: fileStats(p.dataCols, g.rows),
		}})
	}
	return out, nil
}

// actions is the commit: commitInfo, protocol and metaData when creating
// (metaData alone when columns were added), the txns, the adds.
func (p *plan) actions(snap *snapshot, files []writtenFile, name string) []action {
	now := time.Now().UnixMilli()
	var bytes int64
	for _, f := range files {
		bytes += f.add.Size
	}
	partBy, _ := json.Marshal(p.partCols)
	op := "WRITE"
	if p.create {
		op = "CREATE TABLE AS SELECT"
	}
	acts := []action{{CommitInfo: map[string]any{
		"timestamp":           now,
		"operation":           op,
		"operationParameters": map[string]any{"mode": "Append", "partitionBy": string(partBy)},
		"readVersion":         snap.version,
		"isolationLevel":      "WriteSerializable",
		"isBlindAppend":       !p.evolved && !p.create,
		"operationMetrics": map[string]string{
			"numFiles": strconv.Itoa(len(files)), "numOutputRows": strconv.Itoa(len(p.rows)), "numOutputBytes": strconv.FormatInt(bytes, 10),
		},
		"engineInfo": "rivven-connect delta-lake/" + name,
		"txnId":      uuid.NewString(),
	}}}
	if p.create {
		acts = append(acts, action{Protocol: &protocol{MinReaderVersion: readerVersion, MinWriterVersion: writerVersion}})
	}
	if p.create || p.evolved {
		md := &metadata{Format: fileFormat{Provider: "parquet", Options: map[string]string{}}, SchemaString: p.schema.String(),
			PartitionColumns: append([]string{}, p.partCols...), Configuration: map[string]string{}}
		if p.create {
			if p.retention != "" {
				md.Configuration[txnRetentionKey] = p.retention
			}
			md.ID = uuid.NewString()
			md.CreatedTime = &now
		} else {
			// A new metaData replaces the old one whole: everything
			// but the schema is carried over.
			old := *snap.meta
			old.SchemaString = md.SchemaString
			md = &old
		}
		acts = append(acts, action{MetaData: md})
	}
	for i := range p.txns {
		acts = append(acts, action{Txn: &p.txns[i]})
	}
	for _, f := range files {
		acts = append(acts, action{Add: f.add})
	}
	return acts
}

// checkpoint writes the checkpoint of a committed version and points
// _last_checkpoint at it.
func (s *Sink) checkpoint(ctx context.Context, snap *snapshot) error {
	body, n, adds, err := encodeCheckpoint(snap)
	if err != nil {
		return err
	}
	if err := s.st.Put(ctx, checkpointKey(snap.version), body); err != nil {
		return err
	}
	lc, _ := json.Marshal(lastCheckpoint{Version: snap.version, Size: n, SizeInBytes: int64(len(body)), NumOfAddFiles: adds})
	return s.st.Put(ctx, logDir+"_last_checkpoint", lc)
}

// row is one event's row, by its index in the batch.
type row = tablerow.Row
