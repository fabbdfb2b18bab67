//go:build !custom || timestampconverter

package all

import _ "github.com/rivven/rivven-connect/connectors/transform/timestampconverter"
