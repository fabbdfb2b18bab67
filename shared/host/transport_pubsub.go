//go:build !custom || transports || transports.pubsub

package host

// Built with the tag transports.pubsub (or without -tags custom):
// broker.transport pubsub publishes transform output and dead letters to
// Pub/Sub topics.
import _ "github.com/rivven/rivven-connect/shared/topic/pubsubtopic"
