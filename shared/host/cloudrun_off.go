//go:build rivven_aws

package host

import (
	"context"
	"fmt"
	"io"
)

// Built with rivven_aws (the Lambda deployment packages): the Cloud Run
// host and its HTTP stack are left out to keep the bootstrap small.
func runCloudRun(_ context.Context, fn Function, _ Options, stderr io.Writer) int {
	fmt.Fprintf(stderr, "rivven-connect %s: this build is for AWS Lambda only (tag rivven_aws), and this is not Lambda\n", fn)
	return 2
}
