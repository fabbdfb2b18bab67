//go:build !custom || drop

package all

import _ "github.com/rivven/rivven-connect/connectors/utility/drop"
