//go:build !custom || cast

package all

import _ "github.com/rivven/rivven-connect/connectors/transform/cast"
