// Package all links every secrets provider (behind the build tags
// secrets.vault, secrets.awssm and secrets.gcpsm for -tags custom builds):
// the CLI imports it; a function links the providers through shared/host.
package all
