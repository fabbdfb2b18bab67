//go:build !custom || datagen

package all

import _ "github.com/rivven/rivven-connect/connectors/utility/datagen"
