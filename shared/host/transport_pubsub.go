//go:build rivven_pubsub

package host

// Built with -tags rivven_pubsub: broker.transport pubsub publishes
// transform output and dead letters to Pub/Sub topics.
import _ "github.com/rivven/rivven-connect/shared/topic/pubsubtopic"
