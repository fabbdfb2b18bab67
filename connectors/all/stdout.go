//go:build !custom || stdout

package all

import _ "github.com/rivven/rivven-connect/connectors/utility/stdout"
