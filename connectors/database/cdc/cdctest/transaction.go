package cdctest

import (
	"encoding/json"
	"testing"

	"github.com/rivven/rivven-connect/events"
)

// TxRecord is what a test reads of a Debezium record with transaction
// metadata: a BEGIN/END record of the transaction topic (Status, ID,
// EventCount, DataCollections) or a change's transaction block.
type TxRecord struct {
	Status, ID      string
	EventCount      *int `json:"event_count"`
	DataCollections []struct {
		DataCollection string `json:"data_collection"`
		EventCount     int    `json:"event_count"`
	} `json:"data_collections"`
	Transaction struct {
		ID                  string
		TotalOrder          int `json:"total_order"`
		DataCollectionOrder int `json:"data_collection_order"`
	}
	Source struct{ DB, Schema, Table string }
}

// TransactionCodec is the Debezium encoding with
// provide_transaction_metadata, as a sink sets it up for topics.
func TransactionCodec(t testing.TB) events.Codec {
	t.Helper()
	opts := events.DefaultDebeziumOptions()
	opts.ProvideTransactionMetadata = true
	codec, err := events.NewCodec(events.CodecDebezium, opts, events.DefaultCloudEventsOptions())
	if err != nil {
		t.Fatal(err)
	}
	return events.ForTopics(codec)
}

// EncodeTx encodes e with codec and reads the record back.
func EncodeTx(t testing.TB, codec events.Codec, e *events.Event) (TxRecord, []byte) {
	t.Helper()
	out, err := codec.Append(nil, e)
	if err != nil {
		t.Fatalf("%s event: %v", e.Type, err)
	}
	var rec TxRecord
	if err := json.Unmarshal(out, &rec); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	return rec, out
}
