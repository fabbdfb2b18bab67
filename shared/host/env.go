package host

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/telemetry"
)

// Env is a function's configuration: everything comes from the
// environment, because that is what Lambda and Cloud Run let a deployment
// set per function without rebuilding it. It is read and checked once, at
// cold start, by LoadEnv; each field's comment names its variable.
type Env struct {
	// Pipeline (RIVVEN_PIPELINE, required) is the pipeline file: a path, the YAML itself, or an
	// s3://bucket/key or gs://bucket/object URL (when this build links the
	// loader for it; see Loaders).
	Pipeline string
	// Connector (RIVVEN_CONNECTOR) says which component of the pipeline this function is:
	// for a sink function the sink's name (or sinks.<name>); for a
	// transform function the step (sinks.<name>.transforms[<i>],
	// sinks.<name>.transforms.<step>, or the same under sources.<name>).
	// It may be left out when only one component fits.
	Connector string
	// RedisURL (REDIS_URL) is the state store when settings.state.redis_url is empty;
	// without either an embedded store is used (state lasts as long as the
	// warm instance).
	RedisURL string
	// LogLevel (RIVVEN_LOG_LEVEL) overrides settings.log_level.
	LogLevel string
	// Payload (RIVVEN_PAYLOAD, default auto) is how message bodies are decoded: auto, rivven, debezium,
	// cloudevents or raw.
	Payload string
	// OutputTopic (RIVVEN_OUTPUT_TOPIC) is where a transform function publishes (required for
	// transform functions; an event routed elsewhere goes there instead).
	OutputTopic string
}

// LoadEnv reads and checks the environment through lookup. It reads the
// six variables itself: a reflection-driven decoder would link
// encoding/gob, whose package initialisation alone costs a cold start
// about a millisecond.
func LoadEnv(_ context.Context, lookup func(string) (string, bool)) (Env, error) {
	var e Env
	var ok bool
	if e.Pipeline, ok = lookup("RIVVEN_PIPELINE"); !ok {
		return e, errors.New("RIVVEN_PIPELINE: not set; give the pipeline file's path, the YAML itself, or an s3:// or gs:// URL")
	}
	e.Connector, _ = lookup("RIVVEN_CONNECTOR")
	e.RedisURL, _ = lookup("REDIS_URL")
	e.LogLevel, _ = lookup("RIVVEN_LOG_LEVEL")
	if e.Payload, ok = lookup("RIVVEN_PAYLOAD"); !ok {
		e.Payload = events.PayloadAuto
	}
	e.OutputTopic, _ = lookup("RIVVEN_OUTPUT_TOPIC")
	e.Pipeline = strings.TrimSpace(e.Pipeline)
	if e.Pipeline == "" {
		return e, errors.New("RIVVEN_PIPELINE: empty; give the pipeline file's path, the YAML itself, or an s3:// or gs:// URL")
	}
	if err := events.CheckPayloadFormat(e.Payload); err != nil {
		return e, fmt.Errorf("RIVVEN_PAYLOAD: %w", err)
	}
	if e.LogLevel != "" {
		if _, err := telemetry.ParseLevel(e.LogLevel); err != nil {
			return e, fmt.Errorf("RIVVEN_LOG_LEVEL: %w", err)
		}
	}
	return e, nil
}
