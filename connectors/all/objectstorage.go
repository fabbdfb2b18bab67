//go:build !custom || objectstorage

package all

import _ "github.com/rivven/rivven-connect/connectors/storage/objectstorage"
