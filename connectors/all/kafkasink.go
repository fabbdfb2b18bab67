//go:build !custom || kafka || kafka_sink

package all

import _ "github.com/rivven/rivven-connect/connectors/messaging/kafka"
