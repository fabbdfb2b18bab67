//go:build !custom || computefield

package all

import _ "github.com/rivven/rivven-connect/connectors/transform/computefield"
