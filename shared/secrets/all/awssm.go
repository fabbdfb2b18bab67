//go:build !custom || secrets || secrets.awssm

package all

import _ "github.com/rivven/rivven-connect/shared/secrets/awssm"
