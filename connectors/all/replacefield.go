//go:build !custom || replacefield

package all

import _ "github.com/rivven/rivven-connect/connectors/transform/replacefield"
