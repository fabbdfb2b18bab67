//go:build !custom || loaders || loaders.gcs

package host

import "github.com/rivven/rivven-connect/shared/host/gcssrc"

// Built with the tag loaders.gcs (or without -tags custom): RIVVEN_PIPELINE
// may be a gs:// URL.
func init() { RegisterLoader("gs", gcssrc.Load) }
