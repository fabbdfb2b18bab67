//go:build !custom || pubsub

package all

import _ "github.com/rivven/rivven-connect/connectors/messaging/pubsub"
