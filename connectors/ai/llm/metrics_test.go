package llm

import (
	"slices"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/telemetry"
)

// What the transforms declare (MetricNames) is what NewMetrics exports,
// in Prometheus form, and nothing else under the prefix.
func TestMetricNamesAreWhatIsExported(t *testing.T) {
	for _, prefix := range []string{"llm.chat", "llm.embedding"} {
		reg := telemetry.NewRegistry()
		NewMetrics(&connector.Runtime{Name: "t", Metrics: reg}, prefix)
		var b strings.Builder
		if err := reg.WritePrometheus(&b); err != nil {
			t.Fatal(err)
		}
		var exported []string
		for _, l := range strings.Split(b.String(), "\n") {
			if name, ok := strings.CutPrefix(l, "# TYPE "+telemetry.PrometheusName(prefix)+"_"); ok {
				exported = append(exported, telemetry.PrometheusName(prefix)+"_"+strings.Fields(name)[0])
			}
		}
		var declared []string
		for _, n := range MetricNames(prefix) {
			declared = append(declared, telemetry.PrometheusName(n))
		}
		slices.Sort(exported)
		slices.Sort(declared)
		if !slices.Equal(exported, declared) {
			t.Errorf("%s: exported %v, declared %v", prefix, exported, declared)
		}
	}
}
