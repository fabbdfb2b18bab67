// Package iceberg is the Apache Iceberg sink: each batch of events becomes
// one Iceberg snapshot of Parquet data files, committed through a catalog
// (iceberg-go's SQL catalog on PostgreSQL, or a memory catalog), with the
// namespace and table created from the rows when missing. The snapshot's
// summary records what it holds (per topic-partition the highest offset,
// or a batch id), so that a redelivered batch already committed is
// skipped instead of written twice.
package iceberg

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	ice "github.com/apache/iceberg-go"
	icecat "github.com/apache/iceberg-go/catalog"
	icerest "github.com/apache/iceberg-go/catalog/rest"
	icesql "github.com/apache/iceberg-go/catalog/sql"
	_ "github.com/apache/iceberg-go/io/gocloud/azure" // abfs(s)://, wasb(s):// file IO
	_ "github.com/apache/iceberg-go/io/gocloud/gcs"   // gs:// file IO
	_ "github.com/apache/iceberg-go/io/gocloud/s3"    // s3:// file IO
	"github.com/apache/iceberg-go/table"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx" of the SQL catalog

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/metric"
	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/tablerow"
)

// Metric names, as the reference documents them.
const (
	metricRecords = "iceberg.records_written_total"
	metricBatches = "iceberg.batches_committed_total"
	metricBytes   = "iceberg.bytes_written_total"
	metricCommit  = "iceberg.commit_duration_seconds"
)

func init() {
	catalog.RegisterSink[Config](catalog.Meta{
		Name:        "iceberg",
		Aliases:     []string{"apache-iceberg"},
		Category:    catalog.Lakehouse,
		Subcategory: "Table",
		Description: "Writes batches of events as Apache Iceberg snapshots of Parquet data files through a SQL (PostgreSQL) or memory catalog, creating namespace and table from the rows, evolving the schema, and skipping redelivered batches already committed.",
		Tags:        []string{"iceberg", "lakehouse", "parquet", "table", "analytics", "data-lake", "snapshot"},
		Metrics:     []string{metricRecords, metricBatches, metricBytes, metricCommit},
	}, New)
}

// Sink commits batches to one Iceberg table.
type Sink struct {
	cfg   Config
	cat   icecat.Catalog
	db    *sql.DB // the SQL catalog's connection pool (nil for memory)
	ns    table.Identifier
	ident table.Identifier
	props ice.Properties // table properties this sink's settings stand for

	// mu serialises Writes: each one reads the committed state, then
	// commits after it, and the dedup check is only sound against the
	// latest commit.
	mu sync.Mutex

	// beforeCommit, when set (tests), runs between writing the data files
	// and committing them: another writer can commit in between.
	beforeCommit func()
}

// New opens the catalog. The table is looked up (and created) at the first
// Write, when rows say what its columns are.
func New(ctx context.Context, cfg *Config) (connector.Sink, error) { return newSink(ctx, cfg) }

func newSink(ctx context.Context, cfg *Config) (*Sink, error) {
	s := &Sink{cfg: *cfg, ns: strings.Split(cfg.Namespace, ".")}
	s.ident = append(append(table.Identifier{}, s.ns...), cfg.Table)
	s.props = ice.Properties{
		table.ParquetCompressionKey:       parquetCodec(cfg.Compression),
		table.WriteTargetFileSizeBytesKey: strconv.FormatInt(int64(cfg.TargetFileSizeMB)<<20, 10),
	}
	switch cfg.Catalog.Type {
	case CatalogSQL:
		o := cfg.Catalog.SQL
		db, err := sql.Open("pgx", o.URI)
		if err != nil {
			return nil, connector.Fatal(fmt.Errorf("iceberg: catalog.sql.uri: %w", err))
		}
		props := cfg.ioProps()
		props["warehouse"] = o.Warehouse
		cat, err := icesql.NewCatalog(o.Name, db, icesql.Postgres, props)
		if err != nil {
			_ = db.Close()
			// Creating the catalog tables failed: the database is down or
			// refuses us; a restart may help, so this is not fatal.
			return nil, fmt.Errorf("iceberg: opening the SQL catalog: %w", err)
		}
		s.cat, s.db = cat, db
	case CatalogREST:
		o := cfg.Catalog.REST
		opts := []icerest.Option{icerest.WithAdditionalProps(cfg.ioProps())}
		if o.Warehouse != "" {
			opts = append(opts, icerest.WithWarehouseLocation(o.Warehouse))
		}
		if o.Credential != "" {
			if strings.Contains(o.Credential, ":") {
				// client_id:client_secret: the client credentials flow
				// against the catalog's /v1/oauth/tokens.
				opts = append(opts, icerest.WithCredential(o.Credential))
			} else {
				opts = append(opts, icerest.WithOAuthToken(o.Credential))
			}
		}
		// NewCatalog asks GET /v1/config for the catalog's defaults and
		// overrides (the prefix of every path among them).
		cat, err := icerest.NewCatalog(ctx, "rest", o.URI, opts...)
		if err != nil {
			return nil, fmt.Errorf("iceberg: connecting to the REST catalog %s: %s", o.URI, scrub(err.Error(), o.Credential))
		}
		s.cat = cat
	case CatalogMemory:
		s.cat = memCatalogFor(cfg.Catalog.Memory.Warehouse, cfg.ioProps())
	default:
		return nil, connector.Fatal(fmt.Errorf("iceberg: catalog type %q is not supported", cfg.Catalog.Type))
	}
	return s, nil
}

// scrub removes a secret from a message.
func scrub(msg, secret string) string {
	if secret == "" {
		return msg
	}
	msg = strings.ReplaceAll(msg, secret, "[redacted]")
	if _, sec, ok := strings.Cut(secret, ":"); ok && sec != "" {
		msg = strings.ReplaceAll(msg, sec, "[redacted]")
	}
	return msg
}

// parquetCodec maps the config's codec names to Iceberg's
// write.parquet.compression-codec values.
func parquetCodec(c string) string {
	if c == "none" {
		return "uncompressed"
	}
	return c
}

// BatchPolicy asks long-lived runners for batches of batch_size events,
// holding a partial batch at most flush_interval_secs, so that a snapshot
// holds as many rows as configured without the sink buffering data the
// engine believes written.
func (s *Sink) BatchPolicy() (int, time.Duration) {
	return s.cfg.BatchSize, time.Duration(s.cfg.FlushIntervalSecs) * time.Second
}

// Check lists the namespace's tables: the catalog answers.
func (s *Sink) Check(ctx context.Context) error {
	if _, err := s.cat.CheckNamespaceExists(ctx, s.ns); err != nil {
		return fmt.Errorf("iceberg: catalog unreachable: %w", err)
	}
	return nil
}

// Close releases the catalog. Nothing is buffered.
func (s *Sink) Close(context.Context) error {
	var err error
	if c, ok := s.cat.(icecat.Closer); ok {
		err = c.Close()
	}
	if s.db != nil {
		err = errors.Join(err, s.db.Close())
	}
	return err
}

// Write commits the batch as one snapshot before it returns. Events already
// committed (a redelivery) are left out; rows that do not fit the table
// fail alone in a *connector.WriteError; a commit conflict with another
// writer is retried on the refreshed table.
func (s *Sink) Write(ctx context.Context, batch []*events.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := connector.RuntimeFrom(ctx)
	name := rt.Name
	if name == "" {
		name = "iceberg"
	}
	rows, failed := tablerow.Extract(batch, "iceberg")
	var lastErr error
	for attempt := 0; attempt <= s.cfg.MaxCommitRetries; attempt++ {
		res, err := s.commit(ctx, name, rows, failed)
		if err == nil {
			if res.records > 0 {
				rt.Counter(metricRecords, "Rows committed to the Iceberg table.").Add(uint64(res.records))
				rt.Counter(metricBatches, "Snapshots committed (one per batch).").Inc()
				rt.Counter(metricBytes, "Bytes of Parquet data files committed.").Add(uint64(res.bytes))
				rt.Histogram(metricCommit, "Seconds a batch took from catalog load to committed snapshot.", metric.LatencySeconds).Observe(res.took.Seconds())
			} else if res.skipped > 0 {
				rt.Logger().Info("iceberg: batch already committed, skipped", "table", strings.Join(s.ident, "."), "events", res.skipped)
			}
			if len(res.failed) > 0 {
				return &connector.WriteError{Failed: res.failed}
			}
			return nil
		}
		if !isConflict(err) {
			return err
		}
		lastErr = err
		rt.Logger().Info("iceberg: commit conflict, retrying on the refreshed table", "attempt", attempt+1, "err", err)
	}
	return resilience.New(resilience.Connection, fmt.Errorf("iceberg: commit still conflicting after %d retries: %w", s.cfg.MaxCommitRetries, lastErr))
}

// isConflict says whether a commit lost a race with another writer and
// committed nothing: ErrCommitFailed (the REST catalog's 409, the SQL
// catalog's compare-and-swap of the metadata location), or a requirement
// (the branch's snapshot, the schema id) that no longer holds, which the
// SQL catalog reports as a plain error starting "requirement failed".
func isConflict(err error) bool {
	return errors.Is(err, table.ErrCommitFailed) || strings.Contains(err.Error(), "requirement failed:")
}

type commitResult struct {
	records, skipped int
	bytes            int64
	took             time.Duration
	failed           map[int]error
}

// commit runs one attempt: load (or create) the table, leave out what it
// already holds, evolve its schema, write the data files and commit.
func (s *Sink) commit(ctx context.Context, name string, all []row, failedIn map[int]error) (commitResult, error) {
	start := time.Now()
	res := commitResult{failed: map[int]error{}}
	for i, err := range failedIn {
		res.failed[i] = err
	}
	tbl, err := s.loadTable(ctx)
	if err != nil {
		return res, err
	}
	var prev delivered
	if tbl != nil {
		prev = committedState(tbl.Metadata(), name)
	}
	rows, mark := prev.pending(all)
	res.skipped = len(all) - len(rows)
	if len(rows) == 0 {
		return res, nil
	}
	if tbl == nil {
		if tbl, err = s.createTable(ctx, rows); err != nil {
			return res, err
		}
	}

	txn := tbl.NewTransaction()
	schema, changes, err := planSchema(tbl.Schema(), rows, s.cfg.SchemaEvolution, s.timeColumns(), res.failed)
	if err != nil {
		return res, err
	}
	if changes.any() {
		// Apply replays the changes each time it is called (Commit calls
		// it too), so the schema to write with comes from a twin update.
		preview := txn.UpdateSchema(true, false)
		changes.apply(preview)
		if schema, err = preview.Apply(); err != nil {
			return res, resilience.New(resilience.Schema, fmt.Errorf("iceberg: evolving the schema of %s: %w", strings.Join(s.ident, "."), err))
		}
		us := txn.UpdateSchema(true, false)
		changes.apply(us)
		if err := us.Commit(); err != nil {
			return res, resilience.New(resilience.Schema, fmt.Errorf("iceberg: evolving the schema of %s: %w", strings.Join(s.ident, "."), err))
		}
	}
	if needProps(tbl.Properties(), s.props) {
		if err := txn.SetProperties(s.props); err != nil {
			return res, err
		}
	}
	var written []row
	if s.cfg.CommitMode == CommitUpsert {
		if written, err = s.upsert(ctx, txn, schema, rows, mark.summary(name, prev, nil), res.failed); err != nil || len(written) == 0 {
			return res, err
		}
	} else if written, err = s.write(ctx, txn, schema, rows, mark.summary(name, prev, nil), res.failed); err != nil || len(written) == 0 {
		return res, err
	}
	if s.beforeCommit != nil {
		s.beforeCommit()
	}
	newTbl, err := txn.Commit(ctx)
	if err != nil {
		return res, fmt.Errorf("iceberg: committing to %s: %w", strings.Join(s.ident, "."), err)
	}
	res.records = len(written)
	res.took = time.Since(start)
	if snap := newTbl.CurrentSnapshot(); snap != nil && snap.Summary != nil {
		res.bytes, _ = strconv.ParseInt(snap.Summary.Properties["added-files-size"], 10, 64)
	}
	return res, nil
}

// write stages an append or overwrite of the rows that fit schema in txn
// and returns them.
func (s *Sink) write(ctx context.Context, txn *table.Transaction, schema *ice.Schema, rows []row, props ice.Properties, failed map[int]error) ([]row, error) {
	rec, written, err := buildRecord(schema, rows, failed)
	if err != nil || rec == nil {
		return nil, err // nil, nil: every row failed
	}
	defer rec.Release()
	rdr, err := array.NewRecordReader(rec.Schema(), []arrow.RecordBatch{rec})
	if err != nil {
		return nil, err
	}
	defer rdr.Release()
	if s.cfg.CommitMode == CommitOverwrite {
		err = txn.Overwrite(ctx, rdr, props)
	} else {
		err = txn.Append(ctx, rdr, props)
	}
	if err != nil {
		return nil, fmt.Errorf("iceberg: writing data files of %s: %w", strings.Join(s.ident, "."), err)
	}
	return written, nil
}

// loadTable returns the table, or nil when it does not exist yet.
func (s *Sink) loadTable(ctx context.Context) (*table.Table, error) {
	tbl, err := s.cat.LoadTable(ctx, s.ident)
	switch {
	case errors.Is(err, icecat.ErrNoSuchTable), errors.Is(err, icecat.ErrNoSuchNamespace):
		return nil, nil
	case err != nil:
		return nil, resilience.New(resilience.Connection, fmt.Errorf("iceberg: loading %s: %w", strings.Join(s.ident, "."), err))
	}
	return tbl, nil
}

// createTable creates the namespace (when missing) and the table with the
// columns the rows have, partitioned as configured.
func (s *Sink) createTable(ctx context.Context, rows []row) (*table.Table, error) {
	if err := s.cat.CreateNamespace(ctx, s.ns, nil); err != nil && !errors.Is(err, icecat.ErrNamespaceAlreadyExists) {
		return nil, resilience.New(resilience.Connection, fmt.Errorf("iceberg: creating namespace %s: %w", strings.Join(s.ns, "."), err))
	}
	schema, err := inferSchema(rows, s.timeColumns())
	if err != nil {
		return nil, err
	}
	if schema, err = s.withIdentifiers(schema); err != nil {
		return nil, err
	}
	spec, err := s.partitionSpec(schema)
	if err != nil {
		return nil, connector.Fatal(err)
	}
	tbl, err := s.cat.CreateTable(ctx, s.ident, schema, icecat.WithPartitionSpec(&spec), icecat.WithProperties(s.props))
	if errors.Is(err, icecat.ErrTableAlreadyExists) {
		// Another writer created it first: use theirs.
		return s.cat.LoadTable(ctx, s.ident)
	}
	if err != nil {
		return nil, fmt.Errorf("iceberg: creating table %s: %w", strings.Join(s.ident, "."), err)
	}
	return tbl, nil
}

// timeColumns names the columns inferred as timestamps: the column of
// partitioning time (a time transform needs a timestamp, and JSON has
// none).
func (s *Sink) timeColumns() map[string]bool {
	if s.cfg.Partitioning != PartitionTime {
		return nil
	}
	return map[string]bool{s.cfg.PartitionColumns[0]: true}
}

// partitionSpec is the spec of partitioning over schema.
func (s *Sink) partitionSpec(schema *ice.Schema) (ice.PartitionSpec, error) {
	if s.cfg.Partitioning == PartitionNone || s.cfg.Partitioning == "" {
		return *ice.UnpartitionedSpec, nil
	}
	var fields []ice.PartitionField
	for i, col := range s.cfg.PartitionColumns {
		f, ok := schema.FindFieldByName(col)
		if !ok {
			return ice.PartitionSpec{}, fmt.Errorf("iceberg: partition_columns[%d]: %q is not a column of the rows (columns: %s)", i, col, columnList(schema))
		}
		var tr ice.Transform
		name := col
		switch s.cfg.Partitioning {
		case PartitionIdentity:
			tr = ice.IdentityTransform{}
		case PartitionBucket:
			tr = ice.BucketTransform{NumBuckets: s.cfg.PartitionBuckets}
			name = fmt.Sprintf("%s_bucket", col)
		case PartitionTime:
			switch s.cfg.PartitionTimeUnit {
			case "year":
				tr = ice.YearTransform{}
			case "month":
				tr = ice.MonthTransform{}
			case "hour":
				tr = ice.HourTransform{}
			default:
				tr = ice.DayTransform{}
			}
			name = col + "_" + s.cfg.PartitionTimeUnit
		}
		if !tr.CanTransform(f.Type) {
			return ice.PartitionSpec{}, fmt.Errorf("iceberg: partition_columns[%d]: column %q of type %s cannot be partitioned by %s", i, col, f.Type, tr)
		}
		fields = append(fields, ice.PartitionField{SourceIDs: []int{f.ID}, FieldID: 1000 + i, Name: name, Transform: tr})
	}
	return ice.NewPartitionSpec(fields...), nil
}

func columnList(schema *ice.Schema) string {
	names := make([]string, 0, schema.NumFields())
	for _, f := range schema.Fields() {
		names = append(names, f.Name)
	}
	return strings.Join(names, ", ")
}

// needProps says whether the table's properties differ from want.
func needProps(have, want ice.Properties) bool {
	for k, v := range want {
		if have[k] != v {
			return true
		}
	}
	return false
}

var alloc = memory.DefaultAllocator

// row is one event's row, by its index in the batch.
type row = tablerow.Row
