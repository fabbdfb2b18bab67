//go:build rivven_s3

package host

import "github.com/rivven/rivven-connect/shared/host/s3src"

// Built with -tags rivven_s3: RIVVEN_PIPELINE may be an s3:// URL.
func init() { RegisterLoader("s3", s3src.Load) }
