//go:build !custom || insertfield

package all

import _ "github.com/rivven/rivven-connect/connectors/transform/insertfield"
