package host

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rivven/rivven-connect/shared/secrets"
	"github.com/rivven/rivven-connect/shared/telemetry"
)

// Platform is where a function finds itself running.
type Platform string

const (
	Lambda   Platform = "lambda"    // AWS_LAMBDA_RUNTIME_API is set
	CloudRun Platform = "cloud-run" // K_SERVICE or PORT is set
	None     Platform = ""
)

// Detect tells the platform from the variables each one sets for its
// processes: the Lambda Runtime API address on Lambda (every runtime,
// custom ones included), K_SERVICE on Cloud Run and Cloud Run functions,
// PORT on anything that serves HTTP the Knative way.
func Detect(lookup func(string) (string, bool)) Platform {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	if v, _ := lookup("AWS_LAMBDA_RUNTIME_API"); v != "" {
		return Lambda
	}
	k, _ := lookup("K_SERVICE")
	p, _ := lookup("PORT")
	if k != "" || p != "" {
		return CloudRun
	}
	return None
}

// Main runs fn on the platform it finds and exits; function mains call it.
func Main(fn Function) {
	// A panic reaching the function's main goroutine is reported with
	// secret values blanked out (the runtime would print the value).
	defer secrets.Crash()
	os.Exit(Run(context.Background(), fn, Options{}, os.Stdout, os.Stderr))
}

// Run is Main without the exit, for tests: it returns the exit code.
func Run(ctx context.Context, fn Function, opts Options, stdout, stderr io.Writer) int {
	// Spans over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set: the sink's
	// write continues the trace each event carries from its source.
	if shutdown, err := telemetry.StartTracing(ctx, "rivven-connect-"+fn.String()); err != nil {
		fmt.Fprintf(stderr, "rivven-connect %s: tracing off: %v\n", fn, err)
	} else {
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			_ = shutdown(sctx)
		}()
	}
	switch Detect(opts.Lookup) {
	case Lambda:
		api := lookupOr(opts.Lookup, "AWS_LAMBDA_RUNTIME_API", "")
		return runLambda(ctx, fn, api, opts, stdout, stderr)
	case CloudRun:
		return runCloudRun(ctx, fn, opts, stderr)
	}
	fmt.Fprintf(stderr, `rivven-connect %[1]s: this is a serverless function, and this is neither AWS Lambda (AWS_LAMBDA_RUNTIME_API is unset) nor Cloud Run (K_SERVICE and PORT are unset).
To run it here, hand it a trigger envelope:
  rivven-connect invoke --function %[1]s --event samples/events/sqs.json -c pipeline.yaml
or run the whole pipeline in the emulator:
  rivven-connect local -c pipeline.yaml
`, fn)
	return 2
}

func lookupOr(lookup func(string) (string, bool), key, def string) string {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	if v, ok := lookup(key); ok && v != "" {
		return v
	}
	return def
}
