package sdktest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/sdk"
)

// Broken connectors, each failing one check.

type lossyConfig struct {
	Count int `yaml:"count" default:"40" doc:"records"`
}

// lossy skips the batch after the resume position: a restart loses the
// batch whose publishing failed.
type lossy struct{ n int }

func (s *lossy) Read(ctx context.Context, resume []byte, emit sdk.Emitter) error {
	next := 1
	if len(resume) > 0 {
		n, _ := strconv.Atoi(string(resume))
		next = n + 1 + 5 // the bug
	}
	for ; next <= s.n; next += 5 {
		var b []*events.Event
		for i := next; i < next+5; i++ {
			e := sdk.NewEvent(sdk.Record, "s", map[string]any{"id": i})
			e.Metadata.Position = strconv.Itoa(i)
			b = append(b, e)
		}
		if err := emit.Emit(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

type noConfig struct{}

// wholeBatch fails the whole batch when one event has no row.
type wholeBatch struct{}

func (wholeBatch) Write(_ context.Context, b []*events.Event) error {
	for _, e := range b {
		if row, err := e.Row(); err != nil || row == nil {
			return errors.New("no row")
		}
	}
	return nil
}

func init() {
	if os.Getenv("SDKTEST_BROKEN") == "" {
		return
	}
	sdk.RegisterSource(sdk.Meta{Name: "lossy", Category: sdk.Utility, Description: "loses a batch on restart"},
		func(_ context.Context, c *lossyConfig) (sdk.Source, error) { return &lossy{n: c.Count}, nil })
	sdk.RegisterSink(sdk.Meta{Name: "whole-batch", Category: sdk.Utility, Description: "fails whole batches"},
		func(context.Context, *noConfig) (sdk.Sink, error) { return wholeBatch{}, nil })
}

func TestBrokenConnectors(t *testing.T) {
	if os.Getenv("SDKTEST_BROKEN") == "" {
		t.Skip("run by TestChecksCatchBrokenConnectors")
	}
	t.Run("lossy", func(t *testing.T) { Source(t, SourceCase{Name: "lossy"}) })
	t.Run("whole-batch", func(t *testing.T) { Sink(t, SinkCase{Name: "whole-batch"}) })
}

// The checks fail connectors that break what they check (in a child
// process, as their failures must fail a test).
func TestChecksCatchBrokenConnectors(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenConnectors$", "-test.v")
	cmd.Env = append(os.Environ(), "SDKTEST_BROKEN=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the broken connectors passed:\n%s", out)
	}
	for _, want := range []string{
		"--- FAIL: TestBrokenConnectors/lossy/at-least-once_on_restart",
		"the source did not emit 5 of the 5 events whose publishing failed",
		"--- PASS: TestBrokenConnectors/lossy/lifecycle",
		"--- FAIL: TestBrokenConnectors/whole-batch/bad_input",
		"a batch with bad events failed whole",
		"--- PASS: TestBrokenConnectors/whole-batch/lifecycle",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
