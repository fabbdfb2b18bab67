package telemetry

import "testing"

func TestIsLambda(t *testing.T) {
	t.Setenv("AWS_LAMBDA_FUNCTION_NAME", "")
	t.Setenv("AWS_LAMBDA_RUNTIME_API", "")
	if IsLambda() {
		t.Error("IsLambda with neither variable set")
	}
	t.Setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
	if !IsLambda() {
		t.Error("IsLambda with AWS_LAMBDA_RUNTIME_API set")
	}
	t.Setenv("AWS_LAMBDA_RUNTIME_API", "")
	t.Setenv("AWS_LAMBDA_FUNCTION_NAME", "rivven-orders")
	if !IsLambda() {
		t.Error("IsLambda with AWS_LAMBDA_FUNCTION_NAME set")
	}
}
