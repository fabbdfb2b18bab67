package telemetry

import "os"

// IsLambda reports whether the process runs inside AWS Lambda, where metrics
// must leave as CloudWatch Embedded Metric Format lines on stdout (see
// Registry.WriteEMF) because nothing scrapes a Prometheus endpoint.
// AWS_LAMBDA_FUNCTION_NAME is set by the managed runtimes and
// AWS_LAMBDA_RUNTIME_API by every runtime, including custom ones
// (provided.al2023), so either is taken as proof.
func IsLambda() bool {
	return os.Getenv("AWS_LAMBDA_FUNCTION_NAME") != "" || os.Getenv("AWS_LAMBDA_RUNTIME_API") != ""
}
