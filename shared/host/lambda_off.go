//go:build custom && !hosts && !hosts.lambda

package host

import (
	"context"
	"fmt"
	"io"
)

// Built with -tags custom without hosts.lambda (the Cloud Run images): the
// Lambda host is left out.
func runLambda(_ context.Context, fn Function, _ string, _ Options, _, stderr io.Writer) int {
	fmt.Fprintf(stderr, "rivven-connect %s: this build has no Lambda host (built with -tags custom without hosts.lambda), and this is AWS Lambda\n", fn)
	return 2
}
