//go:build !custom || transports || transports.kafka

package host

// Built with the tag transports.kafka (or without -tags custom):
// broker.transport kafka (MSK or any Kafka) publishes transform output and
// dead letters.
import _ "github.com/rivven/rivven-connect/shared/topic/kafkatopic"
