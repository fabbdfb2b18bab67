package iceberg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"maps"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	ice "github.com/apache/iceberg-go"
	icecat "github.com/apache/iceberg-go/catalog"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
)

// memCatalog is the memory catalog: namespaces and the pointer of each
// table to its current metadata file live in this process only, and are
// gone when it exits. The data and metadata files themselves are written to
// the warehouse's storage as with any catalog, so that a reader given a
// metadata location (table.NewFromLocation, another engine) reads the
// table without the catalog. iceberg-go has no in-memory catalog (its SQL
// catalog on SQLite would need a SQLite driver); this one implements the
// catalog interface with iceberg-go's own metadata builder.
//
// Sinks of one process configured with the same warehouse share one
// catalog (memCatalogFor), so two writers of a table see each other's
// commits and race on them as they would on a shared catalog service.
type memCatalog struct {
	props ice.Properties // warehouse and file IO properties

	mu         sync.Mutex
	namespaces map[string]ice.Properties // key: levels joined by "\x1f"
	tables     map[string]memTable       // key: namespace key + "\x1e" + name
}

type memTable struct {
	ident    table.Identifier
	meta     table.Metadata
	location string // current metadata file
}

var memCatalogs = struct {
	sync.Mutex
	byWarehouse map[string]*memCatalog
}{byWarehouse: map[string]*memCatalog{}}

// memCatalogFor returns the process's memory catalog of the warehouse,
// creating it at the first call. props are the file IO properties of the
// first caller.
func memCatalogFor(warehouse string, props ice.Properties) *memCatalog {
	memCatalogs.Lock()
	defer memCatalogs.Unlock()
	warehouse = strings.TrimSuffix(warehouse, "/")
	if c := memCatalogs.byWarehouse[warehouse]; c != nil {
		return c
	}
	p := maps.Clone(props)
	if p == nil {
		p = ice.Properties{}
	}
	p["warehouse"] = warehouse
	c := &memCatalog{props: p, namespaces: map[string]ice.Properties{}, tables: map[string]memTable{}}
	memCatalogs.byWarehouse[warehouse] = c
	return c
}

func nsKey(ns table.Identifier) string { return strings.Join(ns, "\x1f") }

func tableKey(ident table.Identifier) string {
	return nsKey(icecat.NamespaceFromIdent(ident)) + "\x1e" + icecat.TableNameFromIdent(ident)
}

func (c *memCatalog) CatalogType() icecat.Type { return "memory" }

func (c *memCatalog) CreateNamespace(_ context.Context, ns table.Identifier, props ice.Properties) error {
	if err := icecat.ValidateNamespaceIdentifier(ns); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.namespaces[nsKey(ns)]; ok {
		return fmt.Errorf("%w: %s", icecat.ErrNamespaceAlreadyExists, strings.Join(ns, "."))
	}
	c.namespaces[nsKey(ns)] = maps.Clone(props)
	return nil
}

func (c *memCatalog) CheckNamespaceExists(_ context.Context, ns table.Identifier) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.namespaces[nsKey(ns)]
	return ok, nil
}

func (c *memCatalog) ListNamespaces(_ context.Context, parent table.Identifier) ([]table.Identifier, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []table.Identifier
	for k := range c.namespaces {
		ns := strings.Split(k, "\x1f")
		if len(ns) == len(parent)+1 && slices.Equal(ns[:len(parent)], parent) {
			out = append(out, ns)
		}
	}
	slices.SortFunc(out, func(a, b table.Identifier) int { return strings.Compare(nsKey(a), nsKey(b)) })
	return out, nil
}

func (c *memCatalog) DropNamespace(_ context.Context, ns table.Identifier) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.namespaces[nsKey(ns)]; !ok {
		return fmt.Errorf("%w: %s", icecat.ErrNoSuchNamespace, strings.Join(ns, "."))
	}
	for k := range c.tables {
		if strings.HasPrefix(k, nsKey(ns)+"\x1e") {
			return fmt.Errorf("%w: %s", icecat.ErrNamespaceNotEmpty, strings.Join(ns, "."))
		}
	}
	delete(c.namespaces, nsKey(ns))
	return nil
}

func (c *memCatalog) LoadNamespaceProperties(_ context.Context, ns table.Identifier) (ice.Properties, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.namespaces[nsKey(ns)]
	if !ok {
		return nil, fmt.Errorf("%w: %s", icecat.ErrNoSuchNamespace, strings.Join(ns, "."))
	}
	return maps.Clone(p), nil
}

func (c *memCatalog) UpdateNamespaceProperties(_ context.Context, ns table.Identifier, removals []string, updates ice.Properties) (icecat.PropertiesUpdateSummary, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.namespaces[nsKey(ns)]
	if !ok {
		return icecat.PropertiesUpdateSummary{}, fmt.Errorf("%w: %s", icecat.ErrNoSuchNamespace, strings.Join(ns, "."))
	}
	p = maps.Clone(p)
	if p == nil {
		p = ice.Properties{}
	}
	var sum icecat.PropertiesUpdateSummary
	for _, k := range removals {
		if _, dup := updates[k]; dup {
			return icecat.PropertiesUpdateSummary{}, fmt.Errorf("property %q is both removed and updated", k)
		}
		if _, had := p[k]; had {
			delete(p, k)
			sum.Removed = append(sum.Removed, k)
		} else {
			sum.Missing = append(sum.Missing, k)
		}
	}
	for k, v := range updates {
		if p[k] != v {
			p[k] = v
			sum.Updated = append(sum.Updated, k)
		}
	}
	c.namespaces[nsKey(ns)] = p
	return sum, nil
}

func (c *memCatalog) ListTables(_ context.Context, ns table.Identifier) iter.Seq2[table.Identifier, error] {
	c.mu.Lock()
	var out []table.Identifier
	for k, t := range c.tables {
		if strings.HasPrefix(k, nsKey(ns)+"\x1e") {
			out = append(out, slices.Clone(t.ident))
		}
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b table.Identifier) int { return strings.Compare(tableKey(a), tableKey(b)) })
	return func(yield func(table.Identifier, error) bool) {
		for _, id := range out {
			if !yield(id, nil) {
				return
			}
		}
	}
}

func (c *memCatalog) CheckTableExists(_ context.Context, ident table.Identifier) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.tables[tableKey(ident)]
	return ok, nil
}

func (c *memCatalog) LoadTable(_ context.Context, ident table.Identifier) (*table.Table, error) {
	if err := icecat.ValidateTableIdentifier(ident); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tables[tableKey(ident)]
	if !ok {
		if _, nsOK := c.namespaces[nsKey(icecat.NamespaceFromIdent(ident))]; !nsOK {
			return nil, fmt.Errorf("%w: %s", icecat.ErrNoSuchNamespace, strings.Join(icecat.NamespaceFromIdent(ident), "."))
		}
		return nil, fmt.Errorf("%w: %s", icecat.ErrNoSuchTable, strings.Join(ident, "."))
	}
	return c.tableOf(t), nil
}

// tableOf is the table handle of an entry: its file IO from the catalog's
// properties under the table's own.
func (c *memCatalog) tableOf(t memTable) *table.Table {
	props := maps.Clone(c.props)
	maps.Copy(props, t.meta.Properties())
	return table.New(slices.Clone(t.ident), t.meta, t.location, iceio.LoadFSFunc(props, t.location), c)
}

func (c *memCatalog) DropTable(_ context.Context, ident table.Identifier) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.tables[tableKey(ident)]; !ok {
		return fmt.Errorf("%w: %s", icecat.ErrNoSuchTable, strings.Join(ident, "."))
	}
	delete(c.tables, tableKey(ident))
	return nil
}

func (c *memCatalog) RenameTable(ctx context.Context, from, to table.Identifier) (*table.Table, error) {
	c.mu.Lock()
	t, ok := c.tables[tableKey(from)]
	switch {
	case !ok:
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", icecat.ErrNoSuchTable, strings.Join(from, "."))
	case c.tables[tableKey(to)].meta != nil:
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", icecat.ErrTableAlreadyExists, strings.Join(to, "."))
	}
	if _, nsOK := c.namespaces[nsKey(icecat.NamespaceFromIdent(to))]; !nsOK {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", icecat.ErrNoSuchNamespace, strings.Join(icecat.NamespaceFromIdent(to), "."))
	}
	delete(c.tables, tableKey(from))
	t.ident = slices.Clone(to)
	c.tables[tableKey(to)] = t
	c.mu.Unlock()
	return c.LoadTable(ctx, to)
}

// CreateTable writes the table's first metadata file (version 0) under
// <warehouse>/<namespace>.db/<table> (or the location asked for), as
// iceberg-go's SQL catalog lays tables out.
func (c *memCatalog) CreateTable(ctx context.Context, ident table.Identifier, sc *ice.Schema, opts ...icecat.CreateTableOpt) (*table.Table, error) {
	if err := icecat.ValidateTableIdentifier(ident); err != nil {
		return nil, err
	}
	cfg := icecat.NewCreateTableCfg()
	for _, o := range opts {
		o(&cfg)
	}
	ns := icecat.NamespaceFromIdent(ident)
	c.mu.Lock()
	nsProps, nsOK := c.namespaces[nsKey(ns)]
	_, exists := c.tables[tableKey(ident)]
	c.mu.Unlock()
	switch {
	case !nsOK:
		return nil, fmt.Errorf("%w: %s", icecat.ErrNoSuchNamespace, strings.Join(ns, "."))
	case exists:
		return nil, fmt.Errorf("%w: %s", icecat.ErrTableAlreadyExists, strings.Join(ident, "."))
	}
	loc := strings.TrimSuffix(cfg.Location, "/")
	if loc == "" {
		var err error
		if base := nsProps["location"]; base != "" {
			loc, err = url.JoinPath(base, icecat.TableNameFromIdent(ident))
		} else {
			loc, err = url.JoinPath(c.props["warehouse"], strings.Join(ns, ".")+".db", icecat.TableNameFromIdent(ident))
		}
		if err != nil {
			return nil, err
		}
	}
	meta, err := table.NewMetadata(sc, cfg.PartitionSpec, cfg.SortOrder, loc, cfg.Properties)
	if err != nil {
		return nil, err
	}
	t := memTable{ident: slices.Clone(ident), meta: meta}
	if t.location, err = c.writeMetadata(ctx, meta, 0); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, raced := c.tables[tableKey(ident)]; raced {
		return nil, fmt.Errorf("%w: %s", icecat.ErrTableAlreadyExists, strings.Join(ident, "."))
	}
	c.tables[tableKey(ident)] = t
	return c.tableOf(t), nil
}

// CommitTable checks the requirements against the current metadata,
// applies the updates, writes the next metadata file and moves the
// table's pointer to it — all under the catalog's lock, which is the
// compare-and-swap a catalog service does: a writer whose base moved fails
// a requirement and retries on the refreshed table.
func (c *memCatalog) CommitTable(ctx context.Context, ident table.Identifier, reqs []table.Requirement, updates []table.Update) (table.Metadata, string, error) {
	if err := icecat.ValidateTableIdentifier(ident); err != nil {
		return nil, "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, ok := c.tables[tableKey(ident)]
	if !ok {
		// Creating through a commit (a staged create) is not needed by
		// this sink: CreateTable does it.
		return nil, "", fmt.Errorf("%w: %s", icecat.ErrNoSuchTable, strings.Join(ident, "."))
	}
	for _, r := range reqs {
		if err := r.Validate(cur.meta); err != nil {
			return nil, "", err
		}
	}
	updated, err := table.UpdateTableMetadata(cur.meta, updates, cur.location)
	if err != nil {
		return nil, "", err
	}
	if updated.Equals(cur.meta) {
		return cur.meta, cur.location, nil
	}
	version := metadataVersion(cur.location)
	if version < 0 {
		return nil, "", fmt.Errorf("iceberg: memory catalog: unexpected metadata location %s", cur.location)
	}
	loc, err := c.writeMetadata(ctx, updated, version+1)
	if err != nil {
		return nil, "", err
	}
	c.tables[tableKey(ident)] = memTable{ident: cur.ident, meta: updated, location: loc}
	return updated, loc, nil
}

// writeMetadata writes meta as the table's metadata file of version v and
// returns its location.
func (c *memCatalog) writeMetadata(ctx context.Context, meta table.Metadata, v int) (string, error) {
	provider, err := table.LoadLocationProvider(meta.Location(), meta.Properties())
	if err != nil {
		return "", err
	}
	loc, err := provider.NewTableMetadataFileLocation(v)
	if err != nil {
		return "", err
	}
	props := maps.Clone(c.props)
	maps.Copy(props, meta.Properties())
	fsys, err := iceio.LoadFS(ctx, props, loc)
	if err != nil {
		return "", err
	}
	wfs, ok := fsys.(iceio.WriteFileIO)
	if !ok {
		return "", errors.New("iceberg: memory catalog: the warehouse's file IO cannot write")
	}
	body, err := json.Marshal(meta)
	if err != nil {
		return "", err
	}
	if err := wfs.WriteFile(loc, body); err != nil {
		return "", fmt.Errorf("iceberg: writing metadata %s: %w", loc, err)
	}
	return loc, nil
}

// metadataFile matches the metadata file names of the location provider:
// <version>-<uuid>.metadata.json.
var metadataFile = regexp.MustCompile(`^(\d+)-[0-9a-fA-F-]{36}(?:\.\w+)?\.metadata\.json$`)

func metadataVersion(loc string) int {
	m := metadataFile.FindStringSubmatch(path.Base(loc))
	if m == nil {
		return -1
	}
	v, err := strconv.Atoi(m[1])
	if err != nil {
		return -1
	}
	return v
}
