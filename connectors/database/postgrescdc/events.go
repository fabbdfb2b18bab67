package postgrescdc

import (
	"encoding/json"
	"time"

	"github.com/rivven/rivven-connect/events"
)

const connectorName = "postgres-cdc"

// newEvent fills what every event of this source carries.
func (s *Source) newEvent(typ events.Type, schema, name string, ts time.Time, commitTS *time.Time, snapshot bool) *events.Event {
	ns := schema
	return &events.Event{
		Type:      typ,
		Stream:    name,
		Namespace: &ns,
		Timestamp: ts,
		Source: &events.SourceInfo{
			Connector: connectorName,
			Name:      s.name,
			Database:  s.cfg.Database,
			Schema:    schema,
			Table:     name,
			CommitTS:  commitTS,
			Snapshot:  snapshot,
		},
	}
}

// schemaInfo is the data of a schema event.
type schemaInfo struct {
	Schema          string         `json:"schema"`
	Table           string         `json:"table"`
	Columns         []schemaColumn `json:"columns"`
	PrimaryKey      []string       `json:"primary_key"`
	ReplicaIdentity string         `json:"replica_identity"`
}

type schemaColumn struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	OID      uint32 `json:"oid"`
	Key      bool   `json:"key,omitempty"`
	Nullable *bool  `json:"nullable,omitempty"`
}

// columnTypes renders the columns of a schema event as source.columns,
// which every change of the table carries so that an encoding can write
// values by column type (Debezium's Decimal, MicroTimestamp, Json) even
// where the schema event itself was not seen (a function that started
// mid-stream, another partition).
func columnTypes(cols []schemaColumn) string {
	types := make([]events.Column, len(cols))
	for i, c := range cols {
		types[i] = events.Column{Name: c.Name, Type: c.Type, NotNull: c.Nullable != nil && !*c.Nullable}
	}
	return string(events.AppendColumns(nil, types))
}

func identityName(b byte) string {
	switch b {
	case 'd':
		return "default"
	case 'n':
		return "nothing"
	case 'f':
		return "full"
	case 'i':
		return "index"
	}
	return "unknown"
}

// schemaEvent describes a table from the catalog (snapshot, no_data).
func (s *Source) schemaEvent(t *table, pos, lsn string, ts time.Time) *events.Event {
	si := schemaInfo{Schema: t.Schema, Table: t.Name, PrimaryKey: t.PK, ReplicaIdentity: identityName(t.Identity)}
	if si.PrimaryKey == nil {
		si.PrimaryKey = []string{}
	}
	pk := map[string]bool{}
	for _, k := range t.PK {
		pk[k] = true
	}
	for _, c := range t.Columns {
		if !s.keepColumn(t.fullName(), c.Name, pk[c.Name]) {
			continue
		}
		n := c.Nullable
		si.Columns = append(si.Columns, schemaColumn{Name: c.Name, Type: c.Type, OID: c.OID, Key: pk[c.Name], Nullable: &n})
	}
	return s.schemaEventOf(si, pos, lsn, ts, nil)
}

func (s *Source) schemaEventOf(si schemaInfo, pos, lsn string, ts time.Time, commitTS *time.Time) *events.Event {
	b, _ := json.Marshal(si)
	e := s.newEvent(events.Schema, si.Schema, si.Table, ts, commitTS, false)
	e.Data = events.RawPayload(b)
	e.Metadata.Position = pos
	e.Source.Position = lsn
	return e
}
