//go:build !custom || transports || transports.kafka

package main

// broker.transport kafka (franz-go): `run` publishes to and consumes the topics there.
import _ "github.com/rivven/rivven-connect/shared/topic/kafkatopic"
