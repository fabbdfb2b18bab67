//go:build !custom || extractnewrecordstate

package all

import _ "github.com/rivven/rivven-connect/connectors/transform/extractnewrecordstate"
