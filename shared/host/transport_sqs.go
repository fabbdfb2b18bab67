//go:build !custom || transports || transports.sqs

package host

// Built with the tag transports.sqs (or without -tags custom):
// broker.transport sqs publishes transform output and dead letters to SQS
// queues.
import _ "github.com/rivven/rivven-connect/shared/topic/sqstopic"
