//go:build !custom || contentrouter

package all

import _ "github.com/rivven/rivven-connect/connectors/transform/contentrouter"
