package counter_test

import (
	"context"
	"testing"

	"github.com/rivven/rivven-connect/shared/sdk"
	"github.com/rivven/rivven-connect/shared/sdk/sdktest"

	counter "example.com/rivven-counter"
)

// The conformance checks every built-in connector passes.
func TestConformance(t *testing.T) {
	t.Run("acme-counter", func(t *testing.T) {
		sdktest.Source(t, sdktest.SourceCase{Name: "acme-counter", Config: "count: 60\nbatch_size: 7\nkey: k"})
	})
	t.Run("acme-upper", func(t *testing.T) {
		sdktest.Transform(t, sdktest.TransformCase{Name: "acme-upper", Config: "fields: [name]"})
	})
}

func TestSignedSequence(t *testing.T) {
	src, err := counter.NewSource(context.Background(), &counter.Config{Count: 5, BatchSize: 2, Stream: "s", Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	err = src.Read(context.Background(), []byte("2"), sdk.EmitterFunc(func(_ context.Context, b []*sdk.Event) error {
		for _, e := range b {
			row, err := e.Row()
			if err != nil {
				return err
			}
			got = append(got, row)
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0]["id"] != 3 || got[0]["signature"] != counter.Sign("k", 3) || got[0]["price"] != 3.5 {
		t.Fatalf("resumed after 2: %v", got)
	}
	// HMAC-SHA256("k", "3"), computed independently with openssl.
	if want := "73ad098009fda9c640365e02d5f49a48e48249d3ea32e9fbca172ce656802ec2"; counter.Sign("k", 3) != want {
		t.Errorf("signature %s, want %s", counter.Sign("k", 3), want)
	}
}
