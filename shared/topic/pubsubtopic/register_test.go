package pubsubtopic

import (
	"context"
	"testing"

	"cloud.google.com/go/pubsub/v2/pstest"

	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/topic"
	"github.com/rivven/rivven-connect/shared/transport"
)

// broker.transport pubsub opens this transport from the pipeline's block.
func TestOpenFromBrokerBlock(t *testing.T) {
	srv := pstest.NewServer()
	t.Cleanup(func() { _ = srv.Close() })
	ctx := context.Background()
	tr, err := transport.Open(ctx, &config.Broker{Transport: "pubsub", PubSub: &config.BrokerPubSub{ProjectID: project, EmulatorHost: srv.Addr}}, config.TopicSettings{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Create(ctx, "orders", topic.Spec{}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Produce(ctx, "orders", []topic.Message{{Key: []byte("k"), Value: []byte(`{"a":1}`)}}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 || string(msgs[0].Data) != `{"a":1}` || msgs[0].OrderingKey != "k" {
		t.Fatalf("stored %+v", msgs)
	}
}
