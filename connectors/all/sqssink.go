//go:build !custom || sqssink

package all

import _ "github.com/rivven/rivven-connect/connectors/messaging/sqs"
