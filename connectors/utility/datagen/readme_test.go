package datagen

import (
	"os"
	"strings"
	"testing"
)

// TestREADMESample checks that the README's sample events are what the
// README's example config generates.
func TestREADMESample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "<!-- sample:start -->\n```json\n")
	sample, _, ok2 := strings.Cut(rest, "```\n<!-- sample:end -->")
	if !ok || !ok2 {
		t.Fatal("README.md lacks the sample markers")
	}
	cfg := seeded("orders", 42, 3, true)
	cfg.EventsPerSecond, cfg.StreamName = 10, "demo_orders"
	if got := string(rivvenJSON(t, collect(t, cfg, nil))); got != sample {
		t.Errorf("README sample differs from the generated events:\n%s", got)
	}
}
