//go:build !custom || loaders || loaders.s3

package host

import "github.com/rivven/rivven-connect/shared/host/s3src"

// Built with the tag loaders.s3 (or without -tags custom): RIVVEN_PIPELINE
// may be an s3:// URL.
func init() { RegisterLoader("s3", s3src.Load) }
