//go:build custom && !hosts && !hosts.cloudrun

package host

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/rivven/rivven-connect/shared/buildtag"
)

// Built with -tags custom without hosts.cloudrun (the Lambda deployment
// packages): the Cloud Run host and its HTTP stack are left out to keep the
// bootstrap small.
func runCloudRun(_ context.Context, fn Function, _ Options, stderr io.Writer) int {
	fmt.Fprintf(stderr, "rivven-connect %s: this build has no Cloud Run host (built with -tags custom without hosts.cloudrun), and this is not Lambda\n", fn)
	return 2
}

// HTTPHandler is the Cloud Run push handler, which this build left out.
func (rt *Runtime) HTTPHandler(context.Context) (http.Handler, error) {
	return nil, fmt.Errorf("this build has no Cloud Run host, so it cannot take push bodies or CloudEvents (built with -tags custom without %s)", buildtag.Host("cloudrun"))
}
