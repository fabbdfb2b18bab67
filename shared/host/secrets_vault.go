//go:build !custom || secrets || secrets.vault

package host

// Built with the tag secrets.vault (or without -tags custom): vault:
// references resolve against HashiCorp Vault / OpenBao.
import _ "github.com/rivven/rivven-connect/shared/secrets/vault"
