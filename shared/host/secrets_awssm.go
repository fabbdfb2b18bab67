//go:build !custom || secrets || secrets.awssm

package host

// Built with the tag secrets.awssm (or without -tags custom): aws-sm:
// references resolve against AWS Secrets Manager.
import _ "github.com/rivven/rivven-connect/shared/secrets/awssm"
