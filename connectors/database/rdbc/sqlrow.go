package rdbc

import "github.com/rivven/rivven-connect/shared/sqlrow"

// The SQL mapping lives in shared/sqlrow (the redshift sink uses it
// too); these are the short names this package uses for it.
type (
	dialect = sqlrow.Dialect
	column  = sqlrow.Column
)

const (
	postgres = sqlrow.Postgres
	mysql    = sqlrow.MySQL
)
