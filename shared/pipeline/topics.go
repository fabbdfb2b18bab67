package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/topic"
)

// EnsureTopic applies settings.topic (and a source's topic_config) to a
// topic on a durable transport: create it when missing and auto_create is
// on, refuse to start when it is missing and require_topic_exists is set,
// warn when its partitions differ and validate_existing is set. path names
// the YAML entry for errors.
func EnsureTopic(ctx context.Context, admin topic.Admin, set config.TopicSettings, name string, tc *config.TopicConfig, path string, log *slog.Logger) error {
	auto := set.AutoCreate
	want := topic.Spec{Partitions: set.DefaultPartitions, ReplicationFactor: set.DefaultReplicationFactor}
	if tc != nil {
		if tc.AutoCreate != nil {
			auto = *tc.AutoCreate
		}
		if tc.Partitions > 0 {
			want.Partitions = tc.Partitions
		}
		if tc.ReplicationFactor > 0 {
			want.ReplicationFactor = tc.ReplicationFactor
		}
	}
	have, err := admin.Describe(ctx, name)
	switch {
	case err == nil:
		if set.ValidateExisting && have.Partitions != want.Partitions && log != nil {
			log.Warn("topic differs from its configuration", "topic", name, "partitions", have.Partitions, "configured", want.Partitions)
		}
		return nil
	case !errors.Is(err, topic.ErrUnknownTopic):
		return err
	case auto:
		return admin.Create(ctx, name, want)
	case set.RequireTopicExists:
		return fmt.Errorf("%s: topic %q does not exist and auto_create is off (settings.topic.require_topic_exists)", path, name)
	}
	return nil
}
