//go:build !custom || secrets || secrets.vault

package all

import _ "github.com/rivven/rivven-connect/shared/secrets/vault"
