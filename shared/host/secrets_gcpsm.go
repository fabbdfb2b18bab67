//go:build !custom || secrets || secrets.gcpsm

package host

// Built with the tag secrets.gcpsm (or without -tags custom): gcp-sm:
// references resolve against Google Cloud Secret Manager.
import _ "github.com/rivven/rivven-connect/shared/secrets/gcpsm"
