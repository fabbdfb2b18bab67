package mysqlcdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/connectors/database/cdc/cdctest"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/pipeline"
)

// Snapshot rows and binlog changes carry the table's column types
// (source.columns) and the source's name, so that the Debezium encoding
// writes each column as Debezium's MySQL connector does (the data type
// mappings of its documentation) with the schema of schemas_enable. The
// TINYINT after a YEAR column also checks MariaDB's SIGNEDNESS metadata,
// which counts YEAR: -5 must not stream as 251.
func TestColumnTypesForDebezium(t *testing.T) {
	c := testDB(t)
	tbl := uniqueTable(t, c, "dbzcols")
	mustExec(t, c, "CREATE TABLE `"+tbl+"` (id INT NOT NULL PRIMARY KEY, price DECIMAL(10,2) NOT NULL, born DATE, seen DATETIME,"+
		" seen_us DATETIME(6), at TIMESTAMP NULL, tm TIME, doc JSON, size ENUM('small','large'), flags BIT(16), y YEAR, tiny TINYINT)")
	row := "(%d, 1.56, '1997-05-19', '2018-06-20 06:37:03', '2018-06-20 06:37:03.000001', '2018-06-20 13:37:03', '-838:59:59', '{\"a\": 1}', 'large', b'0000000100000010', 2024, -5)"
	mustExec(t, c, "SET time_zone = '+00:00'", "INSERT INTO `"+tbl+"` VALUES "+fmt.Sprintf(row, 1))
	em := newRecorder()
	s := newSource(t, testConfig(tbl))
	ctx, cancel := context.WithCancel(pipeline.WithRuntime(context.Background(), &pipeline.Runtime{Name: "mysql-server-1"}))
	done := make(chan error, 1)
	go func() { done <- s.Read(ctx, nil, em) }()
	stop := func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return fmt.Errorf("Read did not return after cancel")
		}
	}
	t.Cleanup(func() { cancel() })
	waitFor(t, 30*time.Second, "snapshot row", func() bool { ev, _ := em.snapshot(); return len(ev) >= 1 })
	mustExec(t, c, "SET time_zone = '+00:00'", "INSERT INTO `"+tbl+"` VALUES "+fmt.Sprintf(row, 2))
	var snap, ins *events.Event
	waitFor(t, 30*time.Second, "streamed row", func() bool {
		ev, _ := em.snapshot()
		for _, e := range ev {
			switch {
			case e.Type == events.SnapshotRead && e.Source.Table == tbl:
				snap = e
			case e.Type == events.Insert && e.Source.Table == tbl:
				ins = e
			}
		}
		return snap != nil && ins != nil
	})
	if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	opts := events.DefaultDebeziumOptions()
	opts.SchemasEnable = true
	codec, err := events.NewCodec(events.CodecDebezium, opts, events.DefaultCloudEventsOptions())
	if err != nil {
		t.Fatal(err)
	}
	// Values from Debezium's MySQL documentation (DATETIME 2018-06-20
	// 06:37:03 is 1529476623000; TIMESTAMP is an ISO string in UTC) and
	// Kafka's JsonConverter tests (1.56 at scale 2 is "AJw=", day 10000
	// is 1997-05-19).
	want := map[string]string{
		"price": `"AJw="`, "born": `10000`, "seen": `1529476623000`, "seen_us": `1529476623000001`, "at": `"2018-06-20T13:37:03Z"`,
		"tm": `-3020399000000`, "doc": `"{\"a\":1}"`, "size": `"large"`, "flags": `"AgE="`, "y": `2024`, "tiny": `-5`,
	}
	wantSchema := map[string]string{
		"id": "int32 false", "price": "bytes false org.apache.kafka.connect.data.Decimal", "born": "int32 true io.debezium.time.Date",
		"seen": "int64 true io.debezium.time.Timestamp", "seen_us": "int64 true io.debezium.time.MicroTimestamp",
		"at": "string true io.debezium.time.ZonedTimestamp", "tm": "int64 true io.debezium.time.MicroTime",
		"doc": "string true io.debezium.data.Json", "size": "string true io.debezium.data.Enum", "flags": "bytes true io.debezium.data.Bits",
		"y": "int32 true io.debezium.time.Year", "tiny": "int8 true",
	}
	if c.isMariaDB() {
		// MariaDB's JSON is LONGTEXT with a json_valid check: a string,
		// as information_schema (and so Debezium's DDL reading) has it.
		want["doc"], wantSchema["doc"] = `"{\"a\": 1}"`, "string true"
	}
	for _, e := range []*events.Event{snap, ins} {
		if e.Source.Columns == "" || e.Source.Name != "mysql-server-1" {
			t.Fatalf("%s: source %+v", e.Type, e.Source)
		}
		b, err := codec.Append(nil, e)
		if err != nil {
			t.Fatal(err)
		}
		var rec struct {
			Schema struct {
				Name   string
				Fields []struct {
					Field  string
					Fields []struct {
						Type, Name, Field string
						Optional          bool
					}
				}
			}
			Payload struct {
				After  map[string]json.RawMessage
				Source struct {
					Name, File string
					Pos        int64
				}
			}
		}
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		if rec.Schema.Name != "mysql-server-1.test."+tbl+".Envelope" || rec.Payload.Source.Name != "mysql-server-1" {
			t.Errorf("%s: envelope %s, source.name %s", e.Type, rec.Schema.Name, rec.Payload.Source.Name)
		}
		// Debezium's source.file and pos name a binlog position even
		// when the source's positions are GTID sets.
		if rec.Payload.Source.File == "" || rec.Payload.Source.Pos <= 0 {
			t.Errorf("%s: source file %q pos %d", e.Type, rec.Payload.Source.File, rec.Payload.Source.Pos)
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

// With provide_transaction_metadata a transaction is BEGIN, its row
// changes numbered in the transaction and within their table, END with
// event_count and data_collections, as Debezium's MySQL connector sends
// them; the transaction id is the GTID the changes carry.
func TestTransactionBoundaries(t *testing.T) {
	c := testDB(t)
	a := uniqueTable(t, c, "txa")
	b := uniqueTable(t, c, "txb")
	mustExec(t, c, "CREATE TABLE `"+a+"` (id INT PRIMARY KEY)", "CREATE TABLE `"+b+"` (id INT PRIMARY KEY)")
	cfg := testConfig(a, b)
	cfg.Snapshot.Mode = "never"
	cfg.ProvideTransactionMetadata = true
	em := newRecorder()
	s := newSource(t, cfg)
	_, stop := runRead(t, s, nil, em)
	defer stop()
	// The stream is up once a probe transaction comes through. With
	// snapshot mode never the stream starts where the binlog ends when the
	// source connects, so probes committed before that are not seen: probe
	// until one is (a freshly restarted server can take seconds to accept
	// the replication connection).
	for i := 0; ; i++ {
		mustExec(t, c, fmt.Sprintf("INSERT INTO `%s` VALUES (%d)", a, 100+i))
		ev, _ := em.snapshot()
		if len(ev) >= 3 {
			break
		}
		if i == 300 {
			t.Fatal("timed out waiting for the stream")
		}
		time.Sleep(100 * time.Millisecond)
	}
	mustExec(t, c, "BEGIN", "INSERT INTO `"+a+"` VALUES (1)", "INSERT INTO `"+b+"` VALUES (1)", "INSERT INTO `"+a+"` VALUES (2)", "COMMIT")
	// Probe transactions all commit before the one under test, so it is
	// the last five events once its END and its row in b have arrived.
	var got []*events.Event
	waitFor(t, 30*time.Second, "END", func() bool {
		ev, _ := em.snapshot()
		got = nil
		for _, e := range ev {
			if e.Type != events.Schema {
				got = append(got, e)
			}
		}
		if len(got) < 5 {
			return false
		}
		got = got[len(got)-5:]
		return got[4].Type == events.State && got[2].Source != nil && got[2].Source.Table == b
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	codec := cdctest.TransactionCodec(t)
	ta, tb := "test."+a, "test."+b
	txID := got[1].Metadata.TransactionID
	for i, want := range []string{"BEGIN", ta + " 1 1", tb + " 2 1", ta + " 3 2", "END"} {
		rec, out := cdctest.EncodeTx(t, codec, got[i])
		switch want {
		case "BEGIN", "END":
			if rec.Status != want || rec.ID != txID || txID == "" {
				t.Errorf("%d: %s, want %s of %s", i, out, want, txID)
			}
			if want == "END" && (rec.EventCount == nil || *rec.EventCount != 3 || fmt.Sprint(rec.DataCollections) != fmt.Sprintf("[{%s 2} {%s 1}]", ta, tb)) {
				t.Errorf("END %s", out)
			}
		default:
			desc := fmt.Sprintf("%s.%s %d %d", rec.Source.DB, rec.Source.Table, rec.Transaction.TotalOrder, rec.Transaction.DataCollectionOrder)
			if desc != want || rec.Transaction.ID != txID {
				t.Errorf("%d: %s, want %s in %s", i, out, want, txID)
			}
		}
	}
}
