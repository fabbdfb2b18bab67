//go:build !custom || transports || transports.sqs

package main

// broker.transport sqs (AWS SDK; it registers with the sqs connectors): `run` publishes to and consumes the topics there.
import _ "github.com/rivven/rivven-connect/connectors/messaging/sqs"
