package drop

import (
	"context"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/spec"
)

func TestRegistered(t *testing.T) {
	for _, name := range []string{"drop", "null"} {
		e, ok := catalog.Lookup(catalog.Sink, name)
		if !ok || e.Name != "drop" || e.Category != catalog.Utility || e.Subcategory != "Debug" {
			t.Errorf("%s: %+v, %v", name, e, ok)
		}
	}
}

func TestCountsConcurrentWrites(t *testing.T) {
	s, err := New(context.Background(), &Config{})
	if err != nil {
		t.Fatal(err)
	}
	batch := []*events.Event{events.New(events.Record, "s", events.Payload{}), nil, nil}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if err := s.Write(context.Background(), batch); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if n := s.(*Sink).Count(); n != 8*1000*3 {
		t.Errorf("count %d, want %d", n, 8*1000*3)
	}
}

func TestConfigHasNoKeys(t *testing.T) {
	for src, problems := range map[string]int{"": 0, "{}": 0, "rate: 5": 1} {
		var node yaml.Node
		if err := yaml.Unmarshal([]byte(src), &node); err != nil {
			t.Fatal(err)
		}
		if _, ps := spec.Decode[Config](&node, "sinks.null.config"); len(ps) != problems {
			t.Errorf("%q: problems %v, want %d", src, ps, problems)
		}
	}
}
