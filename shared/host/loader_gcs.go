//go:build rivven_gcs

package host

import "github.com/rivven/rivven-connect/shared/host/gcssrc"

// Built with -tags rivven_gcs: RIVVEN_PIPELINE may be a gs:// URL.
func init() { RegisterLoader("gs", gcssrc.Load) }
