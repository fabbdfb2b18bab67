package deltalake

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/shared/format/formattest"
	"github.com/rivven/rivven-connect/shared/objstore"
)

// TestTxnRetention: transaction_retention sets
// delta.setTransactionRetentionDuration on the table the sink creates; a
// txn older than it no longer marks its records as written (a late
// redelivery is written again) and is left out of the next checkpoint,
// while txns without lastUpdated, and fresh ones, stay.
func TestTxnRetention(t *testing.T) {
	for in, want := range map[string]time.Duration{"interval 7 days": 7 * 24 * time.Hour, "1 day 12 hours": 36 * time.Hour, "INTERVAL 30 MINUTES": 30 * time.Minute} {
		if d, err := parseInterval(in); err != nil || d != want {
			t.Errorf("parseInterval(%q) = %v, %v", in, d, err)
		}
	}
	if ps := testConfig("/x", func(c *Config) { c.TransactionRetention = "7 fortnights" }).Validate(); len(ps) != 1 || ps[0].Path != "transaction_retention" {
		t.Errorf("a bad interval: %v", ps)
	}

	dir := t.TempDir()
	ctx := context.Background()
	cfg := testConfig(dir, func(c *Config) { c.TransactionRetention = "interval 1 hour" })
	s := newTestSink(t, cfg)
	if err := s.Write(ctx, orders(0, 10, 0)); err != nil { // version 0
		t.Fatal(err)
	}
	// Version 1, as another writer of this table two hours ago: txns of
	// partition 9 up to offset 50 and of another app, and one without
	// lastUpdated.
	old := time.Now().Add(-2 * time.Hour).UnixMilli()
	commit1 := fmt.Sprintf(`{"txn":{"appId":"delta-lake:cdc.orders:9","version":50,"lastUpdated":%d}}
{"txn":{"appId":"another-app","version":3,"lastUpdated":%d}}
{"txn":{"appId":"legacy-app","version":1}}
`, old, old)
	if err := os.WriteFile(filepath.Join(dir, "_delta_log", commitName(1)), []byte(commit1), 0o644); err != nil {
		t.Fatal(err)
	}
	s2 := newTestSink(t, cfg)
	if err := s2.Write(ctx, orders(40, 10, 9)); err != nil { // version 2: offsets 40..49 of partition 9
		t.Fatal(err)
	}
	for i := range 8 { // versions 3 to 10: a checkpoint at 10
		if err := s2.Write(ctx, orders(100+i*10, 10, 0)); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := objstore.NewLocal(dir)
	log := readLog(t, st)
	if len(log) != 11 {
		t.Fatalf("%d versions, want 11", len(log))
	}
	if md := log[0][2]["metaData"]; md == nil || md["configuration"].(map[string]any)[txnRetentionKey] != "interval 1 hour" {
		t.Fatalf("version 0's metaData: %v", log[0])
	}
	if ids := orderIDs(t, tableRows(t, dir, log)); !slices.Contains(ids, 40) || len(ids) != 100 {
		t.Fatalf("the late redelivery of 40..49 was not written: %d rows", len(ids))
	}
	f := formattest.ReadParquet(t, filepath.Join(dir, "_delta_log", "00000000000000000010.checkpoint.parquet"))[0]
	if f.Error != "" {
		t.Fatal(f.Error)
	}
	var apps []string
	for _, r := range f.Rows {
		if tx, ok := r["txn"].(map[string]any); ok {
			apps = append(apps, fmt.Sprint(tx["appId"], "@", tx["version"]))
		}
	}
	slices.Sort(apps)
	if want := []string{"delta-lake:cdc.orders:0@179", "delta-lake:cdc.orders:9@49", "legacy-app@1"}; !slices.Equal(apps, want) {
		t.Errorf("checkpoint txns %v, want %v", apps, want)
	}
}
