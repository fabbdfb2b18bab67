//go:build !custom || unwrap

package all

import _ "github.com/rivven/rivven-connect/connectors/transform/unwrap"
