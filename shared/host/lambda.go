//go:build !custom || hosts || hosts.lambda

package host

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/secrets"
	"github.com/rivven/rivven-connect/shared/telemetry"
)

// Lambda Runtime API (version 2018-06-01) bits the host uses itself;
// aws-lambda-go covers the invocation loop but not initialization errors.
const (
	runtimeAPIVersion = "2018-06-01"
	initErrorType     = "Runtime.ConfigInvalid"
	// Extensions API version and the name of the extension that enables
	// SIGTERM (aws-lambda-go's name for it).
	extensionAPIVersion = "2020-01-01"
	sigtermExtension    = "GoLangEnableSIGTERM"
	emfNamespace        = "RivvenConnect"
)

// runLambda serves the function on AWS Lambda. Every batch trigger shares
// one handler: the event's eventSource says whether it is SQS, Kinesis or
// Kafka, and the answer is that trigger's partial batch response.
func runLambda(ctx context.Context, fn Function, api string, opts Options, stdout, stderr io.Writer) int {
	// Lambda sends SIGTERM (then SIGKILL) when it retires an instance only
	// to a runtime that registered an extension. Registering is a round
	// trip to the Runtime API, so it runs while Init builds the pipeline;
	// it ends before the first /next, which ends the init phase.
	registered := make(chan error, 1)
	go func() { registered <- registerSIGTERMExtension(api) }()
	rt, err := Init(ctx, fn, opts)
	if err != nil {
		msg := OneLine(err)
		fmt.Fprintf(stderr, "rivven-connect %s: init failed: %s\n", fn, msg)
		if perr := postInitError(api, msg); perr != nil {
			fmt.Fprintf(stderr, "rivven-connect %s: could not report the init error to the Lambda Runtime API: %v\n", fn, perr)
		}
		return 1
	}
	// On SIGTERM: flush the sink in the time Lambda gives, then go.
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		<-term
		cctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
		err := rt.Close(cctx)
		cancel()
		if err != nil {
			rt.Log.Error("close failed", "error", err)
			os.Exit(1)
		}
		os.Exit(0)
	}()
	if err := <-registered; err != nil {
		rt.Log.Warn("SIGTERM is not enabled: the instance may be stopped without its sink being flushed", "error", err)
	}
	dims := map[string]string{"FunctionName": lookupOr(opts.Lookup, "AWS_LAMBDA_FUNCTION_NAME", fn.String())}
	handler := rt.lambdaHandler(stdout, dims)
	// The first collection waits for the first batch to be answered (see
	// startGC): the second invocation puts GOGC back.
	var invoked atomic.Bool
	lambda.StartWithOptions(func(ctx context.Context, event json.RawMessage) (json.RawMessage, error) {
		if invoked.Swap(true) {
			opts.gc.restore()
		}
		return handler(ctx, event)
	}, lambda.WithContext(ctx))
	return 1 // StartWithOptions returns only on a broken Runtime API
}

// registerSIGTERMExtension registers an internal extension that subscribes
// to no event, which is what makes Lambda send SIGTERM before it stops the
// instance (aws-lambda-go's WithEnableSIGTERM does the same, after init).
// The extension's /event/next never answers; it is left waiting.
func registerSIGTERMExtension(api string) error {
	base := "http://" + api + "/" + extensionAPIVersion + "/extension/"
	// The Runtime API is local: no proxy from the environment applies.
	client := &http.Client{Transport: &http.Transport{}}
	req, err := http.NewRequest(http.MethodPost, base+"register", strings.NewReader(`{"events":[]}`))
	if err != nil {
		return err
	}
	req.Header.Set("Lambda-Extension-Name", sigtermExtension)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("register extension: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("register extension: the Runtime API answered %s", resp.Status)
	}
	id := resp.Header.Get("Lambda-Extension-Identifier")
	go func() {
		req, err := http.NewRequest(http.MethodGet, base+"event/next", nil)
		if err != nil {
			return
		}
		req.Header.Set("Lambda-Extension-Identifier", id)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	return nil
}

// lambdaHandler answers one invocation: the batch through the adapter,
// then the metrics as EMF lines on stdout and the spans flushed.
func (rt *Runtime) lambdaHandler(stdout io.Writer, dims map[string]string) func(context.Context, json.RawMessage) (json.RawMessage, error) {
	return func(ctx context.Context, event json.RawMessage) (json.RawMessage, error) {
		// aws-lambda-go recovers a handler's panic and reports its value
		// to the Runtime API (and so to the invoker and the logs): it
		// gets the value with secrets blanked out.
		defer func() {
			if v := recover(); v != nil {
				panic(secrets.PanicValue(v))
			}
		}()
		// The invocation continues the X-Ray trace Lambda hands in
		// (Lambda-Runtime-Trace-Id, which aws-lambda-go puts in ctx).
		xray, _ := ctx.Value("x-amzn-trace-id").(string)
		ictx, end := pipeline.StartInvocation(ctx, "invoke "+rt.Component, nil, xray)
		resp, err := rt.Adapter.InvokeLambda(ictx, event)
		end(err)
		// Metrics leave as CloudWatch EMF lines: nothing scrapes a
		// function, and CloudWatch Logs extracts them from stdout.
		if merr := rt.Metrics.WriteEMF(stdout, emfNamespace, dims, time.Now()); merr != nil {
			rt.Log.Warn("metrics not written", "error", merr)
		}
		telemetry.FlushTraces(ctx)
		if err != nil {
			rt.Log.Error("batch failed", "error", err)
			return nil, err
		}
		return resp, nil
	}
}

// postInitError tells Lambda why the cold start failed
// (POST /runtime/init/error), so the invocation reports the reason rather
// than "Runtime exited".
func postInitError(api, msg string) error {
	body, _ := json.Marshal(map[string]any{"errorMessage": msg, "errorType": initErrorType, "stackTrace": []string{}})
	req, err := http.NewRequest(http.MethodPost, "http://"+api+"/"+runtimeAPIVersion+"/runtime/init/error", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Lambda-Runtime-Function-Error-Type", initErrorType)
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("runtime API answered %s", resp.Status)
	}
	return nil
}
