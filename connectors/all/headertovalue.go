//go:build !custom || headertovalue

package all

import _ "github.com/rivven/rivven-connect/connectors/transform/headertovalue"
