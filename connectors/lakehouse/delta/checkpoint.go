package deltalake

import (
	"bytes"
	"fmt"
	"sort"

	"github.com/parquet-go/parquet-go"
)

// A classic V1 checkpoint (PROTOCOL.md, "Checkpoint Schema"): one Parquet
// row per action, each action a nullable struct column. Only the columns
// this sink's state needs are read; others (domainMetadata, deletion
// vectors, stats_parsed) are ignored, as the protocol asks of a reader
// for columns it does not use.

type cpRow struct {
	Txn      *cpTxn      `parquet:"txn,optional"`
	Add      *cpAdd      `parquet:"add,optional"`
	Remove   *cpRemove   `parquet:"remove,optional"`
	MetaData *cpMeta     `parquet:"metaData,optional"`
	Protocol *cpProtocol `parquet:"protocol,optional"`
}

type cpTxn struct {
	AppID       *string `parquet:"appId,optional"`
	Version     *int64  `parquet:"version,optional"`
	LastUpdated *int64  `parquet:"lastUpdated,optional"`
}

type cpAdd struct {
	Path             *string           `parquet:"path,optional"`
	PartitionValues  map[string]string `parquet:"partitionValues,optional"`
	Size             *int64            `parquet:"size,optional"`
	ModificationTime *int64            `parquet:"modificationTime,optional"`
	DataChange       *bool             `parquet:"dataChange,optional"`
	Stats            *string           `parquet:"stats,optional"`
	Tags             map[string]string `parquet:"tags,optional"`
}

type cpRemove struct {
	Path              *string `parquet:"path,optional"`
	DeletionTimestamp *int64  `parquet:"deletionTimestamp,optional"`
	DataChange        *bool   `parquet:"dataChange,optional"`
}

type cpFormat struct {
	Provider *string           `parquet:"provider,optional"`
	Options  map[string]string `parquet:"options,optional"`
}

type cpMeta struct {
	ID               *string           `parquet:"id,optional"`
	Name             *string           `parquet:"name,optional"`
	Description      *string           `parquet:"description,optional"`
	Format           *cpFormat         `parquet:"format,optional"`
	SchemaString     *string           `parquet:"schemaString,optional"`
	PartitionColumns []string          `parquet:"partitionColumns,list,optional"`
	Configuration    map[string]string `parquet:"configuration,optional"`
	CreatedTime      *int64            `parquet:"createdTime,optional"`
}

type cpProtocol struct {
	MinReaderVersion *int32   `parquet:"minReaderVersion,optional"`
	MinWriterVersion *int32   `parquet:"minWriterVersion,optional"`
	ReaderFeatures   []string `parquet:"readerFeatures,list,optional"`
	WriterFeatures   []string `parquet:"writerFeatures,list,optional"`
}

func deref[T any](p *T) T {
	var z T
	if p == nil {
		return z
	}
	return *p
}

func ptr[T any](v T) *T { return &v }

// readCheckpoint rebuilds a snapshot (without its version) from a
// checkpoint file.
func readCheckpoint(b []byte) (*snapshot, error) {
	rows, err := parquet.Read[cpRow](bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, err
	}
	snap := emptySnapshot()
	for _, r := range rows {
		var a action
		switch {
		case r.Protocol != nil:
			a.Protocol = &protocol{MinReaderVersion: deref(r.Protocol.MinReaderVersion), MinWriterVersion: deref(r.Protocol.MinWriterVersion),
				ReaderFeatures: r.Protocol.ReaderFeatures, WriterFeatures: r.Protocol.WriterFeatures}
		case r.MetaData != nil:
			m := r.MetaData
			md := &metadata{ID: deref(m.ID), Name: m.Name, Description: m.Description, SchemaString: deref(m.SchemaString),
				PartitionColumns: m.PartitionColumns, CreatedTime: m.CreatedTime, Configuration: m.Configuration}
			if m.Format != nil {
				md.Format = fileFormat{Provider: deref(m.Format.Provider), Options: m.Format.Options}
			}
			if md.PartitionColumns == nil {
				md.PartitionColumns = []string{}
			}
			if md.Configuration == nil {
				md.Configuration = map[string]string{}
			}
			a.MetaData = md
		case r.Txn != nil && r.Txn.AppID != nil:
			a.Txn = &txn{AppID: *r.Txn.AppID, Version: deref(r.Txn.Version), LastUpdated: r.Txn.LastUpdated}
		case r.Add != nil && r.Add.Path != nil:
			ad := &addFile{Path: *r.Add.Path, Size: deref(r.Add.Size), ModificationTime: deref(r.Add.ModificationTime),
				DataChange: deref(r.Add.DataChange), Stats: deref(r.Add.Stats), Tags: r.Add.Tags, PartitionValues: map[string]*string{}}
			for k, v := range r.Add.PartitionValues {
				if v == "" {
					ad.PartitionValues[k] = nil // the empty string is null
				} else {
					ad.PartitionValues[k] = ptr(v)
				}
			}
			a.Add = ad
		case r.Remove != nil && r.Remove.Path != nil:
			a.Remove = &removeFile{Path: *r.Remove.Path, DeletionTimestamp: r.Remove.DeletionTimestamp, DataChange: deref(r.Remove.DataChange)}
		default:
			continue
		}
		if err := snap.apply(&a); err != nil {
			return nil, err
		}
	}
	if snap.meta == nil || snap.protocol == nil {
		return nil, fmt.Errorf("no metaData or protocol action")
	}
	return snap, nil
}

// encodeCheckpoint writes a snapshot as a checkpoint: protocol, metaData,
// every txn, every live add and every remove tombstone, in that order.
// It returns the file and the number of actions (rows) and adds in it.
// Checkpoints are Snappy-compressed whatever the data files use, as
// Spark writes them: every Delta reader reads that codec.
func encodeCheckpoint(snap *snapshot) (b []byte, actions, adds int64, err error) {
	var rows []cpRow
	p := snap.protocol
	rows = append(rows, cpRow{Protocol: &cpProtocol{MinReaderVersion: &p.MinReaderVersion, MinWriterVersion: &p.MinWriterVersion,
		ReaderFeatures: p.ReaderFeatures, WriterFeatures: p.WriterFeatures}})
	m := snap.meta
	rows = append(rows, cpRow{MetaData: &cpMeta{ID: ptr(m.ID), Name: m.Name, Description: m.Description,
		Format:       &cpFormat{Provider: ptr(m.Format.Provider), Options: nonNil(m.Format.Options)},
		SchemaString: ptr(m.SchemaString), PartitionColumns: m.PartitionColumns, Configuration: nonNil(m.Configuration), CreatedTime: m.CreatedTime}})
	appIDs := make([]string, 0, len(snap.txns))
	for id := range snap.txns {
		appIDs = append(appIDs, id)
	}
	sort.Strings(appIDs)
	for _, id := range appIDs {
		t := snap.txns[id]
		rows = append(rows, cpRow{Txn: &cpTxn{AppID: ptr(t.AppID), Version: ptr(t.Version), LastUpdated: t.LastUpdated}})
	}
	paths := make([]string, 0, len(snap.files))
	for path := range snap.files {
		paths = append(paths, path)
	}
	sort.Strings(paths)
	for _, path := range paths {
		f := snap.files[path]
		pv := make(map[string]string, len(f.PartitionValues))
		for k, v := range f.PartitionValues {
			pv[k] = deref(v) // null is the empty string
		}
		ad := &cpAdd{Path: ptr(f.Path), PartitionValues: pv, Size: ptr(f.Size), ModificationTime: ptr(f.ModificationTime),
			DataChange: ptr(false), Tags: f.Tags}
		if f.Stats != "" {
			ad.Stats = ptr(f.Stats)
		}
		rows = append(rows, cpRow{Add: ad})
	}
	paths = paths[:0]
	for path := range snap.removes {
		paths = append(paths, path)
	}
	sort.Strings(paths)
	for _, path := range paths {
		r := snap.removes[path]
		rows = append(rows, cpRow{Remove: &cpRemove{Path: ptr(r.Path), DeletionTimestamp: r.DeletionTimestamp, DataChange: ptr(false)}})
	}
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[cpRow](&buf, parquet.Compression(&parquet.Snappy))
	if _, err := w.Write(rows); err != nil {
		return nil, 0, 0, err
	}
	if err := w.Close(); err != nil {
		return nil, 0, 0, err
	}
	return buf.Bytes(), int64(len(rows)), int64(len(snap.files)), nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
