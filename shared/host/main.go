package host

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/secrets"
	"github.com/rivven/rivven-connect/shared/secrets/supervise"
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
	gc := deferFirstGC()
	// What no code can recover — a panic in a goroutine a library started,
	// a fatal error — the runtime prints to descriptor 2, values and all.
	// So a function whose pipeline holds secret references runs as a
	// child of itself whose stderr the parent redacts (one more process
	// at cold start); one without runs alone.
	var parsed *parsedPipeline
	if Detect(nil) != None && !supervise.IsChild() {
		var may bool
		if may, parsed = mayReadSecrets(os.LookupEnv); may {
			if code, ok := supervise.Run(os.Args[1:]); ok {
				os.Exit(code)
			}
		}
	}
	stderr := supervise.Child()
	// A panic reaching the function's main goroutine is reported with
	// secret values blanked out (the runtime would print the value).
	defer secrets.Crash()
	// The pipeline mayReadSecrets parsed is the one Init would read and
	// parse again: it is handed over, so a cold start parses it once.
	os.Exit(Run(context.Background(), fn, Options{Log: stderr, parsed: parsed, gc: gc}, os.Stdout, stderr))
}

// GOGC from exec to the first batch answered, and the heap size at which
// the runtime collects anyway meanwhile (a soft memory limit), so that a
// large first batch cannot grow the heap toward five times its live size
// on a small instance.
const (
	coldStartGCPercent = 400
	coldStartHeapLimit = 32 << 20
)

// startGC holds back the first garbage collection of a cold start. A cold
// start allocates about as much as the Go runtime's first heap goal (4 MB)
// before it has answered its first batch — parsing the pipeline, building
// the connector, the state store compiling its scripts — so the runtime
// would collect once, mid-start, garbage that is mostly start-up's own.
// The goal is raised until the host takes its second batch (or request),
// then put back; meanwhile a soft memory limit of 32 MiB (or a lower
// GOMEMLIMIT) still collects a heap a large first batch grows. A GOGC the
// deployment sets is left alone.
type startGC struct {
	once      sync.Once
	prev      int
	prevLimit int64
}

func deferFirstGC() *startGC {
	if _, set := os.LookupEnv("GOGC"); set {
		return nil
	}
	g := &startGC{prevLimit: debug.SetMemoryLimit(-1)}
	if g.prevLimit > coldStartHeapLimit {
		debug.SetMemoryLimit(coldStartHeapLimit)
	}
	g.prev = debug.SetGCPercent(coldStartGCPercent)
	return g
}

// restore puts GOGC and the memory limit back; nil-safe, and only the
// first call counts.
func (g *startGC) restore() {
	if g != nil {
		g.once.Do(func() {
			debug.SetGCPercent(g.prev)
			debug.SetMemoryLimit(g.prevLimit)
		})
	}
}

// parsedPipeline is RIVVEN_PIPELINE read and parsed with the default
// catalog and the process environment, as Init would.
type parsedPipeline struct {
	ref   string // RIVVEN_PIPELINE, trimmed
	where string
	p     *config.Pipeline
	scope *scopedCatalog
}

// mayReadSecrets reports whether the function's pipeline (RIVVEN_PIPELINE)
// may hold secret references: false only when it is a file or inline YAML
// that parses and holds none, and then it returns that parse too. A
// pipeline at an s3:// or gs:// URL is not fetched twice at cold start to
// tell: it counts as one with references. Without RIVVEN_PIPELINE, cold
// start fails before any secret is read.
func mayReadSecrets(lookup func(string) (string, bool)) (bool, *parsedPipeline) {
	ref, _ := lookup("RIVVEN_PIPELINE")
	if ref = strings.TrimSpace(ref); ref == "" {
		return false, nil
	}
	if !isInline(ref) && isURL(ref) {
		return true, nil
	}
	doc, where, err := ReadPipeline(context.Background(), ref)
	if err != nil {
		return true, nil
	}
	scope := &scopedCatalog{inner: catalog.Default}
	p, err := config.Parse(doc, scope, config.Options{Env: lookup})
	if err != nil || pipeline.HasSecretRefs(p) {
		return true, nil
	}
	return false, &parsedPipeline{ref: ref, where: where, p: p, scope: scope}
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
