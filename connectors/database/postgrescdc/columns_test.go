package postgrescdc

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/connectors/database/cdc/cdctest"
	"github.com/rivven/rivven-connect/events"
)

// Snapshot rows and streamed changes carry the table's column types
// (source.columns), so that the Debezium encoding writes each column as
// Debezium's PostgreSQL connector does (the "Data type mappings" of its
// documentation) with the schema of schemas_enable, from either path.
func TestColumnTypesForDebezium(t *testing.T) {
	h := newHarness(t)
	h.exec(`CREATE TABLE $T (id int PRIMARY KEY, price numeric(10,2) NOT NULL, qty numeric, born date, seen timestamp,
	  seen_ms timestamp(3), at timestamptz, tm time, doc jsonb, u uuid, iv interval, tags int[])`)
	row := `(%d, 1.56, 12.345, '1997-05-19', '2018-06-20 15:13:16.945104', '2018-06-20 15:13:16.945', '2018-06-20 15:13:16.945104+02',
	  '04:00:00.5', '{"a": 1}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1 year 2 mons 3 days 04:05:06.78', '{1,2}')`
	h.exec(`INSERT INTO $T VALUES ` + fmt.Sprintf(row, 1))
	cfg := h.config([]string{"$T"}, "")
	rec, stop := startStreaming(t, h, cfg, context.Background())
	waitFor(t, 20*time.Second, "snapshot row", func() bool { return len(eventsOf(rec, h.name, events.SnapshotRead)) == 1 })
	h.exec(`INSERT INTO $T VALUES ` + fmt.Sprintf(row, 2))
	waitFor(t, 20*time.Second, "streamed row", func() bool { return len(eventsOf(rec, h.name, events.Insert)) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	opts := events.DefaultDebeziumOptions()
	opts.SchemasEnable = true
	codec, err := events.NewCodec(events.CodecDebezium, opts, events.DefaultCloudEventsOptions())
	if err != nil {
		t.Fatal(err)
	}
	// Values from Debezium's documentation where it gives one (TIMESTAMP
	// "2018-06-20 15:13:16.945104" is MicroTimestamp 1529507596945104)
	// and Kafka's JsonConverter tests (1.56 at scale 2 is "AJw=", day
	// 10000 is 1997-05-19).
	want := map[string]string{
		"price": `"AJw="`, "qty": `{"scale":3,"value":"MDk="}`, "born": `10000`, "seen": `1529507596945104`,
		"seen_ms": `1529507596945`, "at": `"2018-06-20T13:13:16.945104Z"`, "tm": `14400500000`, "doc": `"{\"a\": 1}"`,
		"u": `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`, "iv": `37091106780000`, "tags": `[1,2]`,
	}
	wantSchema := map[string]string{
		"id": "int32 false", "price": "bytes false org.apache.kafka.connect.data.Decimal", "qty": "struct true io.debezium.data.VariableScaleDecimal",
		"born": "int32 true io.debezium.time.Date", "seen": "int64 true io.debezium.time.MicroTimestamp",
		"seen_ms": "int64 true io.debezium.time.Timestamp", "at": "string true io.debezium.time.ZonedTimestamp",
		"tm": "int64 true io.debezium.time.MicroTime", "doc": "string true io.debezium.data.Json",
		"u": "string true io.debezium.data.Uuid", "iv": "int64 true io.debezium.time.MicroDuration", "tags": "array true",
	}
	for _, e := range []*events.Event{eventsOf(rec, h.name, events.SnapshotRead)[0], eventsOf(rec, h.name, events.Insert)[0]} {
		if e.Source.Columns == "" {
			t.Fatalf("%s: no source.columns", e.Type)
		}
		b, err := codec.Append(nil, e)
		if err != nil {
			t.Fatal(err)
		}
		var rec struct {
			Schema struct {
				Fields []struct {
					Field  string
					Fields []struct {
						Type, Name, Field string
						Optional          bool
					}
				}
			}
			Payload struct{ After map[string]json.RawMessage }
		}
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		for col, w := range want {
			if got := string(rec.Payload.After[col]); got != w {
				t.Errorf("%s %s = %s, want %s", e.Type, col, got, w)
			}
		}
		for _, f := range rec.Schema.Fields {
			if f.Field != "after" {
				continue
			}
			for _, c := range f.Fields {
				got := fmt.Sprintf("%s %v", c.Type, c.Optional)
				if c.Name != "" {
					got += " " + c.Name
				}
				if got != wantSchema[c.Field] {
					t.Errorf("%s schema of %s: %s, want %s", e.Type, c.Field, got, wantSchema[c.Field])
				}
			}
		}
	}
}

// With provide_transaction_metadata a transaction is BEGIN, its changes
// numbered within their table (data_collection_order), END with
// event_count and data_collections, as Debezium's PostgreSQL connector
// sends them; the Debezium encoding puts the boundaries on
// <server>.transaction with the id its changes' transaction blocks carry.
func TestTransactionBoundaries(t *testing.T) {
	h := newHarness(t)
	h.exec(`CREATE TABLE $T (id int PRIMARY KEY)`, `CREATE TABLE $T_b (id int PRIMARY KEY)`)
	cfg := h.config([]string{"$T", "$T_b"}, "snapshot:\n  mode: never\nprovide_transaction_metadata: true\n")
	rec, stop := startStreaming(t, h, cfg, context.Background())
	h.exec(`BEGIN; INSERT INTO $T VALUES (1); INSERT INTO $T_b VALUES (1); INSERT INTO $T VALUES (2); COMMIT`)
	var got []*events.Event
	waitFor(t, 20*time.Second, "END", func() bool {
		got = got[:0]
		for _, e := range rec.snapshot() {
			if e.Type != events.Schema {
				got = append(got, e)
			}
		}
		return len(got) == 5
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	codec := cdctest.TransactionCodec(t)
	a, b := "public."+h.name, "public."+h.name+"_b"
	var txID string
	for i, want := range []string{"BEGIN", a + " 1", b + " 1", a + " 2", "END"} {
		e := got[i]
		rec, out := cdctest.EncodeTx(t, codec, e)
		topic, diverted := codec.(events.Diverter).Divert(e)
		switch want {
		case "BEGIN", "END":
			server := e.Source.Name // empty without a pipeline runtime: the connector's name stands in
			if server == "" {
				server = connectorName
			}
			if rec.Status != want || !diverted || topic != server+".transaction" {
				t.Errorf("%d: %s to %q, want %s on the transaction topic", i, out, topic, want)
			}
			if txID == "" {
				txID = rec.ID
			} else if rec.ID != txID {
				t.Errorf("END id %s, BEGIN's %s", rec.ID, txID)
			}
			if want == "END" && (rec.EventCount == nil || *rec.EventCount != 3 || fmt.Sprint(rec.DataCollections) != fmt.Sprintf("[{%s 2} {%s 1}]", a, b)) {
				t.Errorf("END %s", out)
			}
		default:
			gotDesc := fmt.Sprintf("%s.%s %d", rec.Source.Schema, rec.Source.Table, rec.Transaction.DataCollectionOrder)
			if gotDesc != want || rec.Transaction.ID != txID || diverted {
				t.Errorf("%d: %s, want %s in transaction %s", i, out, want, txID)
			}
		}
	}
}
