//go:build !custom || timezoneconverter

package all

import _ "github.com/rivven/rivven-connect/connectors/transform/timezoneconverter"
