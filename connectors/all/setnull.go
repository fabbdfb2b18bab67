//go:build !custom || setnull

package all

import _ "github.com/rivven/rivven-connect/connectors/transform/setnull"
