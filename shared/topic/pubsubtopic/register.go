package pubsubtopic

import (
	"context"

	"cloud.google.com/go/pubsub/v2"

	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/transport"
)

// Linking this package makes broker.transport pubsub available to the CLI
// and the functions.
func init() {
	transport.Register("pubsub", func(ctx context.Context, b *config.Broker, _ config.TopicSettings) (transport.Transport, error) {
		var pc config.BrokerPubSub
		if b.PubSub != nil {
			pc = *b.PubSub
		}
		c, err := NewClient(ctx, ClientConfig{ProjectID: pc.ProjectID, CredentialsPath: pc.CredentialsPath, EmulatorHost: pc.EmulatorHost})
		if err != nil {
			return nil, err
		}
		return &owned{Transport: New(c), client: c}, nil
	})
}

// owned is a transport that also owns its client.
type owned struct {
	*Transport
	client *pubsub.Client
}

// Close stops the publishers after sending what they hold, then the
// client.
func (o *owned) Close() error {
	o.Transport.Close()
	return o.client.Close()
}
