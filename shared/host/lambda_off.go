//go:build rivven_gcp

package host

import (
	"context"
	"fmt"
	"io"
)

// Built with rivven_gcp (the Cloud Run images): the Lambda host is left
// out.
func runLambda(_ context.Context, fn Function, _ string, _ Options, _, stderr io.Writer) int {
	fmt.Fprintf(stderr, "rivven-connect %s: this build is for Cloud Run only (tag rivven_gcp), and this is AWS Lambda\n", fn)
	return 2
}
