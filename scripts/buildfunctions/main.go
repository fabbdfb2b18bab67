// Command buildfunctions builds every function under functions/ for both
// clouds and prints a size table:
//
//   - dist/aws/<kind>-<name>.zip: a Lambda deployment package for the
//     provided.al2023 runtime on arm64 — one file, bootstrap, built with
//     CGO_ENABLED=0, -tags custom,hosts.lambda,lambda.norpc (the Lambda
//     host only, no net/rpc runtime shim), -trimpath and -ldflags="-s -w";
//   - dist/gcp/<kind>-<name>/: a Cloud Run build context — the static
//     linux/amd64 binary (-tags custom,hosts.cloudrun: the Cloud Run host
//     only) and a Dockerfile on a distroless base — for
//     `gcloud run deploy --source dist/gcp/<kind>-<name>`.
//
// -aws-tags and -gcp-tags add build tags of shared/buildtag's vocabulary:
// loaders.s3 and loaders.gcs link the pipeline loaders for s3:// and gs://
// URLs, transports.sqs, transports.kafka and transports.pubsub the
// broker.transport clients. It is a Go program rather than a shell script
// so that it runs wherever Go does, zip included.
//
//	go run ./scripts/buildfunctions [-out dist] [-aws-tags loaders.s3,transports.sqs] [-gcp-tags loaders.gcs,transports.pubsub]
package main

import (
	"archive/zip"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	out := flag.String("out", "dist", "output directory")
	awsTags := flag.String("aws-tags", "", "extra build tags for the Lambda binaries (e.g. loaders.s3,transports.sqs)")
	gcpTags := flag.String("gcp-tags", "", "extra build tags for the Cloud Run binaries (e.g. loaders.gcs,transports.pubsub)")
	only := flag.String("only", "", "build only functions whose kind/name contains this")
	flag.Parse()
	fns, err := functions()
	if err != nil {
		fail(err)
	}
	if err := os.MkdirAll(filepath.Join(*out, "aws"), 0o755); err != nil {
		fail(err)
	}
	type row struct {
		name           string
		bootstrap, zip int64
		cloudRun       int64
	}
	var rows []row
	for _, fn := range fns {
		if *only != "" && !strings.Contains(fn, *only) {
			continue
		}
		name := strings.ReplaceAll(fn, "/", "-")
		pkg := "./functions/" + fn

		// AWS Lambda: bootstrap in a zip.
		tmp, err := os.MkdirTemp("", "rivven-fn-")
		if err != nil {
			fail(err)
		}
		bootstrap := filepath.Join(tmp, "bootstrap")
		if err := build(pkg, bootstrap, "linux", "arm64", join("custom,hosts.lambda,lambda.norpc", *awsTags)); err != nil {
			fail(err)
		}
		zipPath := filepath.Join(*out, "aws", name+".zip")
		if err := zipFile(zipPath, bootstrap, "bootstrap"); err != nil {
			fail(err)
		}
		r := row{name: name, bootstrap: size(bootstrap), zip: size(zipPath)}
		os.RemoveAll(tmp)

		// Cloud Run: binary and Dockerfile.
		ctxDir := filepath.Join(*out, "gcp", name)
		if err := os.MkdirAll(ctxDir, 0o755); err != nil {
			fail(err)
		}
		server := filepath.Join(ctxDir, "server")
		if err := build(pkg, server, "linux", "amd64", join("custom,hosts.cloudrun", *gcpTags)); err != nil {
			fail(err)
		}
		if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(dockerfile(fn)), 0o644); err != nil {
			fail(err)
		}
		r.cloudRun = size(server)
		rows = append(rows, r)
	}
	fmt.Printf("\n%-36s %14s %12s %16s\n", "function", "bootstrap", "zip", "cloud run bin")
	for _, r := range rows {
		fmt.Printf("%-36s %14s %12s %16s\n", r.name, mib(r.bootstrap), mib(r.zip), mib(r.cloudRun))
	}
	fmt.Printf("\n%d functions: %s/aws/*.zip (linux/arm64 bootstrap), %s/gcp/*/ (linux/amd64 + Dockerfile)\n", len(rows), *out, *out)
}

// functions lists functions/<kind>/<name> directories that hold a main.
func functions() ([]string, error) {
	var out []string
	for _, kind := range []string{"sink", "transform"} {
		ents, err := os.ReadDir(filepath.Join("functions", kind))
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return nil, err
		}
		for _, e := range ents {
			if _, err := os.Stat(filepath.Join("functions", kind, e.Name(), "main.go")); err == nil {
				out = append(out, kind+"/"+e.Name())
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

func build(pkg, out, goos, goarch, tags string) error {
	args := []string{"build", "-trimpath", "-ldflags=-s -w", "-o", out}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s (%s/%s): %w", pkg, goos, goarch, err)
	}
	return nil
}

// zipFile writes a zip holding one executable file, as Lambda wants it.
func zipFile(zipPath, file, name string) error {
	f, err := os.Create(zipPath)
	if err != nil {
		return err
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	in, err := os.Open(file)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	hdr, err := zip.FileInfoHeader(st)
	if err != nil {
		return err
	}
	hdr.Name, hdr.Method = name, zip.Deflate
	hdr.SetMode(0o755)
	w, err := zw.CreateHeader(hdr)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, in); err != nil {
		return err
	}
	return zw.Close()
}

func dockerfile(fn string) string {
	return fmt.Sprintf(`# Cloud Run build context for functions/%s (made by scripts/buildfunctions).
# server is a static linux/amd64 binary; it serves $PORT (Pub/Sub push
# bodies and CloudEvents at /) and reads RIVVEN_PIPELINE, RIVVEN_CONNECTOR,
# REDIS_URL, RIVVEN_LOG_LEVEL and RIVVEN_PAYLOAD from the environment.
FROM gcr.io/distroless/static-debian12:nonroot
COPY server /server
ENTRYPOINT ["/server"]
`, fn)
}

func join(tags ...string) string {
	var out []string
	for _, t := range tags {
		if t != "" {
			out = append(out, t)
		}
	}
	return strings.Join(out, ",")
}

func size(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func fail(err error) {
	fmt.Fprintln(os.Stderr, "buildfunctions:", err)
	os.Exit(1)
}
