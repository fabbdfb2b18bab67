//go:build rivven_kafka

package host

// Built with -tags rivven_kafka: broker.transport kafka (MSK or any Kafka)
// publishes transform output and dead letters.
import _ "github.com/rivven/rivven-connect/shared/topic/kafkatopic"
