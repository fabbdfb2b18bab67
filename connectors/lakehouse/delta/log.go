package deltalake

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rivven/rivven-connect/shared/objstore"
)

// The Delta transaction log (PROTOCOL.md of delta-io/delta): every commit
// is _delta_log/<version, 20 digits>.json, one action per line; a
// checkpoint <version>.checkpoint.parquet holds the whole state at a
// version, and _delta_log/_last_checkpoint points at the newest one.

const logDir = "_delta_log/"

// Protocol versions this sink writes and can write to: reader 1, writer 2
// (append-only tables and column invariants, both respected: the sink only
// appends, and refuses tables whose columns carry invariants).
const (
	readerVersion = 1
	writerVersion = 2
)

// checkpointInterval: a checkpoint every 10 commits, Delta's default
// (delta.checkpointInterval).
const checkpointInterval = 10

type action struct {
	CommitInfo map[string]any `json:"commitInfo,omitempty"`
	Protocol   *protocol      `json:"protocol,omitempty"`
	MetaData   *metadata      `json:"metaData,omitempty"`
	Txn        *txn           `json:"txn,omitempty"`
	Add        *addFile       `json:"add,omitempty"`
	Remove     *removeFile    `json:"remove,omitempty"`
}

type protocol struct {
	MinReaderVersion int32    `json:"minReaderVersion"`
	MinWriterVersion int32    `json:"minWriterVersion"`
	ReaderFeatures   []string `json:"readerFeatures,omitempty"`
	WriterFeatures   []string `json:"writerFeatures,omitempty"`
}

type fileFormat struct {
	Provider string            `json:"provider"`
	Options  map[string]string `json:"options"`
}

type metadata struct {
	ID               string            `json:"id"`
	Name             *string           `json:"name,omitempty"`
	Description      *string           `json:"description,omitempty"`
	Format           fileFormat        `json:"format"`
	SchemaString     string            `json:"schemaString"`
	PartitionColumns []string          `json:"partitionColumns"`
	CreatedTime      *int64            `json:"createdTime,omitempty"`
	Configuration    map[string]string `json:"configuration"`
}

type txn struct {
	AppID       string `json:"appId"`
	Version     int64  `json:"version"`
	LastUpdated *int64 `json:"lastUpdated,omitempty"`
}

type addFile struct {
	Path             string             `json:"path"`
	PartitionValues  map[string]*string `json:"partitionValues"`
	Size             int64              `json:"size"`
	ModificationTime int64              `json:"modificationTime"`
	DataChange       bool               `json:"dataChange"`
	Stats            string             `json:"stats,omitempty"`
	Tags             map[string]string  `json:"tags,omitempty"`
}

type removeFile struct {
	Path                 string             `json:"path"`
	DeletionTimestamp    *int64             `json:"deletionTimestamp,omitempty"`
	DataChange           bool               `json:"dataChange"`
	ExtendedFileMetadata *bool              `json:"extendedFileMetadata,omitempty"`
	PartitionValues      map[string]*string `json:"partitionValues,omitempty"`
	Size                 *int64             `json:"size,omitempty"`
}

// snapshot is the table's state at a version: what replaying the log up to
// it gives.
type snapshot struct {
	version  int64 // -1: no table
	protocol *protocol
	meta     *metadata
	schema   *structType
	txns     map[string]txn
	files    map[string]*addFile
	removes  map[string]*removeFile
}

func emptySnapshot() *snapshot {
	return &snapshot{version: -1, txns: map[string]txn{}, files: map[string]*addFile{}, removes: map[string]*removeFile{}}
}

// clone copies the maps, so that applying a commit to the copy leaves the
// original as it was (a failed commit attempt keeps the old state).
func (s *snapshot) clone() *snapshot {
	c := *s
	c.txns = make(map[string]txn, len(s.txns))
	for k, v := range s.txns {
		c.txns[k] = v
	}
	c.files = make(map[string]*addFile, len(s.files))
	for k, v := range s.files {
		c.files[k] = v
	}
	c.removes = make(map[string]*removeFile, len(s.removes))
	for k, v := range s.removes {
		c.removes[k] = v
	}
	return &c
}

// apply is action reconciliation (PROTOCOL.md, "Action Reconciliation"):
// the latest protocol and metaData win, txn keeps the latest version per
// appId, add and remove of a path cancel each other.
func (s *snapshot) apply(a *action) error {
	switch {
	case a.Protocol != nil:
		s.protocol = a.Protocol
	case a.MetaData != nil:
		st, err := parseSchema(a.MetaData.SchemaString)
		if err != nil {
			return err
		}
		s.meta, s.schema = a.MetaData, st
	case a.Txn != nil:
		s.txns[a.Txn.AppID] = *a.Txn
	case a.Add != nil:
		s.files[a.Add.Path] = a.Add
		delete(s.removes, a.Add.Path)
	case a.Remove != nil:
		delete(s.files, a.Remove.Path)
		s.removes[a.Remove.Path] = a.Remove
	}
	return nil
}

func commitKey(v int64) string     { return fmt.Sprintf("%s%020d.json", logDir, v) }
func checkpointKey(v int64) string { return fmt.Sprintf("%s%020d.checkpoint.parquet", logDir, v) }

// parseCommitKey reads the version of _delta_log/<20 digits>.json.
func parseCommitKey(k string) (int64, bool) {
	name := strings.TrimPrefix(k, logDir)
	if len(name) != 25 || !strings.HasSuffix(name, ".json") {
		return 0, false
	}
	v, err := strconv.ParseInt(name[:20], 10, 64)
	return v, err == nil
}

// parseCheckpointKey reads the version of a classic single-file checkpoint.
func parseCheckpointKey(k string) (int64, bool) {
	name := strings.TrimPrefix(k, logDir)
	if len(name) != 39 || !strings.HasSuffix(name, ".checkpoint.parquet") {
		return 0, false
	}
	v, err := strconv.ParseInt(name[:20], 10, 64)
	return v, err == nil
}

// lastCheckpoint is _delta_log/_last_checkpoint.
type lastCheckpoint struct {
	Version       int64  `json:"version"`
	Size          int64  `json:"size"`
	Parts         *int64 `json:"parts,omitempty"`
	SizeInBytes   int64  `json:"sizeInBytes,omitempty"`
	NumOfAddFiles int64  `json:"numOfAddFiles,omitempty"`
}

// loadSnapshot brings a snapshot up to the newest version: from base (a
// snapshot this process already holds) when given, else from the newest
// readable checkpoint and the commits after it.
func loadSnapshot(ctx context.Context, st objstore.Store, base *snapshot) (*snapshot, error) {
	var snap *snapshot
	if base != nil && base.version >= 0 {
		snap = base.clone()
	} else {
		var err error
		if snap, err = startFromCheckpoint(ctx, st); err != nil {
			return nil, err
		}
	}
	after := ""
	if snap.version >= 0 {
		after = commitKey(snap.version)
	}
	keys, err := st.List(ctx, logDir, after)
	if err != nil {
		return nil, fmt.Errorf("listing %s%s: %w", st.URL()+"/", logDir, err)
	}
	var versions []int64
	for _, k := range keys {
		if v, ok := parseCommitKey(k); ok && v > snap.version {
			versions = append(versions, v)
		}
	}
	sort.Slice(versions, func(i, j int) bool { return versions[i] < versions[j] })
	for _, v := range versions {
		if v != snap.version+1 {
			return nil, fmt.Errorf("the log of %s has a gap: version %d follows %d", st.URL(), v, snap.version)
		}
		if err := readCommit(ctx, st, v, snap); err != nil {
			return nil, err
		}
		snap.version = v
	}
	if snap.version >= 0 && (snap.meta == nil || snap.protocol == nil) {
		return nil, fmt.Errorf("the log of %s has no %s action up to version %d", st.URL(), map[bool]string{true: "metaData", false: "protocol"}[snap.meta == nil], snap.version)
	}
	if err := snap.expireTxns(time.Now()); err != nil {
		return nil, fmt.Errorf("the table at %s: %w", st.URL(), err)
	}
	return snap, nil
}

// readCommit applies the actions of one commit file.
func readCommit(ctx context.Context, st objstore.Store, v int64, snap *snapshot) error {
	b, err := st.Get(ctx, commitKey(v))
	if err != nil {
		return fmt.Errorf("reading version %d: %w", v, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var a action
		if err := json.Unmarshal(line, &a); err != nil {
			return fmt.Errorf("version %d: %w", v, err)
		}
		if err := snap.apply(&a); err != nil {
			return fmt.Errorf("version %d: %w", v, err)
		}
	}
	return sc.Err()
}

// startFromCheckpoint reads the checkpoint _last_checkpoint names, or the
// newest classic checkpoint in the listing, or none (version -1).
func startFromCheckpoint(ctx context.Context, st objstore.Store) (*snapshot, error) {
	var candidates []int64
	if b, err := st.Get(ctx, logDir+"_last_checkpoint"); err == nil {
		var lc lastCheckpoint
		if json.Unmarshal(b, &lc) == nil && (lc.Parts == nil || *lc.Parts <= 1) {
			candidates = append(candidates, lc.Version)
		}
	} else if !errors.Is(err, objstore.ErrNotFound) {
		return nil, fmt.Errorf("reading _last_checkpoint: %w", err)
	}
	if len(candidates) == 0 {
		keys, err := st.List(ctx, logDir, "")
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", logDir, err)
		}
		for _, k := range keys {
			if v, ok := parseCheckpointKey(k); ok {
				candidates = append(candidates, v)
			}
		}
		sort.Slice(candidates, func(i, j int) bool { return candidates[i] > candidates[j] })
	}
	for _, v := range candidates {
		b, err := st.Get(ctx, checkpointKey(v))
		if errors.Is(err, objstore.ErrNotFound) {
			continue // named but gone (cleaned up, or a multi-part one)
		}
		if err != nil {
			return nil, fmt.Errorf("reading checkpoint %d: %w", v, err)
		}
		snap, err := readCheckpoint(b)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %d: %w", v, err)
		}
		snap.version = v
		return snap, nil
	}
	return emptySnapshot(), nil
}

// encodeCommit is the commit file: one JSON action per line.
func encodeCommit(actions []action) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range actions {
		_ = enc.Encode(&actions[i]) // strings, numbers, maps of them
	}
	return buf.Bytes()
}
