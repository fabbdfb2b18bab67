//go:build !custom || sqssource

package all

import _ "github.com/rivven/rivven-connect/connectors/messaging/sqs"
