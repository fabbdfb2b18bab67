//go:build !custom || secrets || secrets.gcpsm

package all

import _ "github.com/rivven/rivven-connect/shared/secrets/gcpsm"
