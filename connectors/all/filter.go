//go:build !custom || filter

package all

import _ "github.com/rivven/rivven-connect/connectors/transform/filter"
