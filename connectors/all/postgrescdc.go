//go:build !custom || postgres_cdc || postgrescdc

package all

import _ "github.com/rivven/rivven-connect/connectors/database/postgrescdc"
