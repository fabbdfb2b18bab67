//go:build !custom

package all

import (
	"testing"

	"github.com/rivven/rivven-connect/shared/catalog"
)

// TestLinked checks that importing all registers the utility connectors
// under their names and aliases.
func TestLinked(t *testing.T) {
	for _, c := range []struct {
		kind catalog.Kind
		name string
	}{
		{catalog.Source, "datagen"},
		{catalog.Sink, "stdout"}, {catalog.Sink, "console"},
		{catalog.Sink, "drop"}, {catalog.Sink, "null"},
	} {
		if _, ok := catalog.Lookup(c.kind, c.name); !ok {
			t.Errorf("%s %q is not registered", c.kind, c.name)
		}
	}
}
