package kafkatopic

import (
	"context"

	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/topic"
	"github.com/rivven/rivven-connect/shared/transport"
)

// Linking this package makes broker.transport kafka (the default when a
// pipeline has a broker block) available to the CLI and the functions.
func init() {
	transport.Register("kafka", func(ctx context.Context, b *config.Broker, t config.TopicSettings) (transport.Transport, error) {
		k, err := New(ctx, b)
		if err != nil {
			return nil, err
		}
		k.AutoCreate = t.AutoCreate
		if t.DefaultPartitions > 0 {
			k.Default = topic.Spec{Partitions: t.DefaultPartitions, ReplicationFactor: max(t.DefaultReplicationFactor, 1)}
		}
		return k, nil
	})
}

// ValidateTopic checks name against Kafka's topic naming rules.
func (k *Kafka) ValidateTopic(name string) error { return ValidateTopic(name) }
