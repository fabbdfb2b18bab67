//go:build !custom || flatten

package all

import _ "github.com/rivven/rivven-connect/connectors/transform/flatten"
