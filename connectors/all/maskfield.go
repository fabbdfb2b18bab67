//go:build !custom || maskfield

package all

import _ "github.com/rivven/rivven-connect/connectors/transform/maskfield"
