//go:build !custom || kafka || kafka_source

package all

import _ "github.com/rivven/rivven-connect/connectors/messaging/kafka"
