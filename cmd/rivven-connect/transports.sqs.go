//go:build !custom || transports || transports.sqs

package main

// broker.transport sqs (AWS SDK): `run` publishes to and consumes the topics there.
import _ "github.com/rivven/rivven-connect/shared/topic/sqstopic"
