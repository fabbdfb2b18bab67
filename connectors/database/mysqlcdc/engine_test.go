package mysqlcdc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	_ "github.com/rivven/rivven-connect/connectors/utility/drop" // the sink name the YAML uses
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/state"
)

type recSink struct {
	mu  sync.Mutex
	got []*events.Event
}

func (s *recSink) Write(_ context.Context, b []*events.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, b...)
	return nil
}

func (s *recSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// factory builds the source from the catalog (YAML config and all) and
// hands out the recording sink in place of drop.
type factory struct {
	catalog.Builder
	sink *recSink
}

func (f factory) NewSink(context.Context, string, *yaml.Node, string) (pipeline.Sink, error) {
	return f.sink, nil
}

// TestThroughEngine runs mysql-cdc from a pipeline YAML in the local
// emulator (topics, partitions, committed positions) into a sink: the
// snapshot rows and the streamed changes arrive with keys and source info.
func TestThroughEngine(t *testing.T) {
	c := testDB(t)
	tbl := versionedTable(t, c, "engine")
	mustExec(t, c, "INSERT INTO "+tbl+" VALUES (1, 1), (2, 2), (3, 3)")
	doc := fmt.Sprintf(`
sources:
  mysql:
    connector: mysql-cdc
    topic: cdc
    config:
      host: 127.0.0.1
      port: 3306
      database: test
      user: root
      password: ""
      server_id: %d
      tables: [%s]
      tls: {mode: disable}
sinks:
  out: {connector: drop, topics: [cdc]}
`, 500000+time.Now().UnixNano()%100000, tbl)
	p, err := config.Parse([]byte(doc), catalog.Default, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := state.Open(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sink := &recSink{}
	l, err := pipeline.NewLocal(context.Background(), p, factory{sink: sink}, pipeline.LocalOptions{
		MaxEvents: 5, Store: store, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), BatchSize: 16,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	waitFor(t, 30*time.Second, "snapshot through the engine", func() bool { return sink.count() >= 3 })
	mustExec(t, c, "UPDATE "+tbl+" SET v = 20 WHERE id = 2", "DELETE FROM "+tbl+" WHERE id = 3")
	waitFor(t, 30*time.Second, "changes through the engine", func() bool { return sink.count() >= 5 })
	// The emulator stops a source on the first batch past its budget.
	mustExec(t, c, "UPDATE "+tbl+" SET v = 10 WHERE id = 1")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if sink.count() != 5 {
		t.Fatalf("sink got %d events", sink.count())
	}
	byType := map[events.Type]int{}
	for _, e := range sink.got {
		byType[e.Type]++
		if len(e.Key) == 0 || e.Source == nil || e.Source.Table != tbl || e.Metadata.Position == "" {
			t.Errorf("event lost key/source/position: %+v", e)
		}
	}
	if byType[events.SnapshotRead] != 3 || byType[events.Update] != 1 || byType[events.Delete] != 1 {
		t.Fatalf("types %v", byType)
	}
}
