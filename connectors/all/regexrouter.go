//go:build !custom || regexrouter

package all

import _ "github.com/rivven/rivven-connect/connectors/transform/regexrouter"
