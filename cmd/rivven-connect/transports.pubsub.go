//go:build !custom || transports || transports.pubsub

package main

// broker.transport pubsub (Google Pub/Sub client): `run` publishes to and consumes the topics there.
import _ "github.com/rivven/rivven-connect/shared/topic/pubsubtopic"
