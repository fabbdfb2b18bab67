//go:build !custom || mqtt

package all

import _ "github.com/rivven/rivven-connect/connectors/messaging/mqtt"
