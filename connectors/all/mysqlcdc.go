//go:build !custom || mysqlcdc

package all

import _ "github.com/rivven/rivven-connect/connectors/database/mysqlcdc"
