//go:build !custom || valuetokey

package all

import _ "github.com/rivven/rivven-connect/connectors/transform/valuetokey"
