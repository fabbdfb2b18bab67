//go:build rivven_sqs

package host

// Built with -tags rivven_sqs: broker.transport sqs publishes transform
// output and dead letters to SQS queues.
import _ "github.com/rivven/rivven-connect/connectors/messaging/sqs"
