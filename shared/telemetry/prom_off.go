//go:build custom && (hosts || hosts.lambda || hosts.cloudrun)

package telemetry

import (
	"errors"
	"io"
	"net/http"
)

// A function build (-tags custom with a hosts tag) links no Prometheus
// client: nothing scrapes a function, whose metrics leave as CloudWatch
// EMF lines (WriteEMF), and the client's packages (with protobuf) would
// cost every cold start several milliseconds of package initialisation.
type promExport struct{}

func newPromExport(*Registry) promExport { return promExport{} }

func (promExport) batchLatency(string, string, string) Observer { return nil }
func (promExport) register(metricDef, string, any) error        { return nil }
func (promExport) report(string, func() map[string]float64)     {}

var errNoPrometheus = errors.New("telemetry: this function build has no Prometheus exposition (its metrics are CloudWatch EMF lines)")

// WritePrometheus fails: this build has no Prometheus exposition.
func (r *Registry) WritePrometheus(io.Writer) error { return errNoPrometheus }

// Handler answers 404: this build has no Prometheus exposition.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, errNoPrometheus.Error(), http.StatusNotFound)
	})
}
