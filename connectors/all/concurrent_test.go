package all

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/connectors/utility/datagen"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
)

var yamlBlock = regexp.MustCompile("(?s)```yaml\n(.*?)```")

// TestTransformsApplyConcurrently builds every transform from the first
// example in its README and applies it to batches from several goroutines
// at once, as the sink handler does for concurrent requests (the
// connector contract allows it). Run with -race (go tool task test does),
// it finds state a transform shares between calls.
func TestTransformsApplyConcurrently(t *testing.T) {
	readmes, _ := filepath.Glob("../transform/*/README.md")
	ai, _ := filepath.Glob("../ai/*/README.md") // the LLM transforms
	readmes = append(readmes, ai...)
	built := 0
	for _, path := range readmes {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		m := yamlBlock.FindSubmatch(b)
		if m == nil {
			continue
		}
		var doc struct {
			Transforms []struct {
				Type      string    `yaml:"type"`
				Transform string    `yaml:"transform"` // the other spelling of type
				Config    yaml.Node `yaml:"config"`
			} `yaml:"transforms"`
		}
		if err := yaml.Unmarshal(m[1], &doc); err != nil || len(doc.Transforms) == 0 {
			continue // an example of something else
		}
		step := doc.Transforms[0]
		if step.Type == "" {
			step.Type = step.Transform
		}
		tr, err := catalog.Builder{}.NewTransform(context.Background(), step.Type, &step.Config, "transforms")
		if err != nil {
			t.Fatalf("%s: its README example does not build: %v", path, err)
		}
		built++
		t.Run(step.Type, func(t *testing.T) {
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					for _, cdc := range []bool{false, true} {
						// A transform may change its events: each goroutine
						// gets its own.
						seed := uint64(g + 1)
						src, err := datagen.New(ctx, &datagen.Config{Pattern: "orders", MaxEvents: 200, StreamName: "conc", Seed: &seed, CDCMode: cdc})
						if err != nil {
							t.Error(err)
							return
						}
						_ = src.Read(ctx, nil, connector.EmitterFunc(func(ctx context.Context, batch []*events.Event) error {
							_, _ = tr.Apply(ctx, batch) // results do not matter here, only races
							return nil
						}))
					}
				}()
			}
			wg.Wait()
		})
	}
	if built < 16 {
		t.Fatalf("built %d transforms from their README examples, want every transform's", built)
	}
}
