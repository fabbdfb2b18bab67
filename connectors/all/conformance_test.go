package all

import (
	"testing"

	"github.com/rivven/rivven-connect/shared/sdk/sdktest"
)

// The SDK's conformance checks are the ones built-in connectors pass: run
// them on a source, a sink and transforms of this repository.
func TestSDKConformanceBuiltIns(t *testing.T) {
	t.Run("datagen", func(t *testing.T) {
		sdktest.Source(t, sdktest.SourceCase{Name: "datagen", Config: "pattern: orders\nevents_per_second: 0\nseed: 7"})
	})
	t.Run("drop", func(t *testing.T) {
		sdktest.Sink(t, sdktest.SinkCase{Name: "drop"})
	})
	t.Run("MaskField", func(t *testing.T) {
		sdktest.Transform(t, sdktest.TransformCase{Name: "MaskField", Config: "fields: [name]"})
	})
	t.Run("Cast", func(t *testing.T) {
		sdktest.Transform(t, sdktest.TransformCase{Name: "Cast", Config: "specs: {amount: string}"})
	})
}
