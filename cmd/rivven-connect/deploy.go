package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/deploy"
)

func init() {
	register(command{"deploy", "Generate a Terraform root module that deploys a pipeline (deploy terraform --cloud aws|gcp)", runDeploy})
}

const deploySynopsis = "terraform -c FILE --cloud aws|gcp --out DIR [--sinks function|service] [--topics sqs|sqs-fifo|msk|kafka] [--module-source PATH|ADDRESS] [--dist PATH]"

// runDeploy writes a root module wiring infra/terraform/modules for the
// pipeline: a function (or a service) per sink, a service per source, the
// topics between them with their dead-letter queues, and Redis; and the
// pipeline copy the deployment ships, with a broker block naming those
// topics when the pipeline has none. A broker block of the pipeline that
// does not fit --cloud/--topics is a usage error (exit 2). The same
// pipeline always gives the same bytes, so the output can be committed and
// diffed.
func runDeploy(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("deploy", deploySynopsis, stdout)
	file := fs.String("c", "", "pipeline file")
	cloud := fs.String("cloud", "", "aws or gcp")
	out := fs.String("out", "", "directory to write the root module to (created if missing)")
	sinks := fs.String("sinks", "function", "how sinks run: function (Lambda / Cloud Run behind cloud topics) or service (rivven-connect run sink on the Redis streams the sources write)")
	topics := fs.String("topics", "", "AWS, sink functions: what carries topics: sqs (default), sqs-fifo, msk or kafka (the sources publish there through the broker block the deployment adds to its pipeline copy)")
	modules := fs.String("module-source", "", "where the Terraform modules come from: a path (relative to the current directory) or a git URL or registry address such as git::https://github.com/rivven/rivven-connect.git//infra/terraform/modules?ref=v1.2.0 (default: infra/terraform/modules of the checkout around the current directory; outside a checkout, that address at this CLI's version)")
	dist := fs.String("dist", "", "where go tool task build writes functions (default: dist/ of that repository)")
	// Flags may come before or after "terraform".
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return exitWith(exitUsage, err)
		}
		if args = fs.Args(); len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	if len(pos) != 1 || pos[0] != "terraform" {
		fs.Usage()
		return exitWith(exitUsage, errors.New("usage: rivven-connect deploy "+deploySynopsis))
	}
	switch {
	case *file == "":
		return exitWith(exitUsage, errors.New("-c FILE is required"))
	case *cloud != "aws" && *cloud != "gcp":
		return exitWith(exitUsage, fmt.Errorf("--cloud %q: aws or gcp", *cloud))
	case *out == "":
		return exitWith(exitUsage, errors.New("--out DIR is required"))
	}
	raw, err := os.ReadFile(*file)
	if err != nil {
		return exitWith(exitUsage, err)
	}
	p, unknown, err := deploy.ParsePipeline(raw, catalog.Default)
	if ps := config.Problems(err); ps != nil {
		return exitWith(exitUsage, fmt.Errorf("%s is invalid:\n%s", *file, formatProblems(*file, ps)))
	}
	if err != nil {
		return exitWith(exitUsage, err)
	}

	absOut, err := filepath.Abs(*out)
	if err != nil {
		return exitWith(exitUsage, err)
	}
	wd, err := os.Getwd()
	if err != nil {
		return exitWith(exitFailed, err)
	}
	repo := deploy.FindRepo(wd)
	opts := deploy.Options{Cloud: *cloud, Sinks: *sinks, Topics: *topics, Source: filepath.Base(*file), Artifact: artifact}
	// Inside a checkout, module sources are written relative to the output
	// directory, so the root keeps working wherever the checkout is;
	// outside one (an installed binary) they are the repository's address
	// at the CLI's own version, so the root works on any machine.
	local := true
	switch {
	case *modules != "" && deploy.IsRemoteSource(*modules):
		opts.Modules, local = *modules, false
		opts.ModulesFrom = "given with --module-source"
	case *modules != "":
		opts.Modules, err = deploy.LocalSource(absOut, *modules)
		opts.ModulesFrom = "given with --module-source (a path, written relative to this directory)"
	case repo != "":
		opts.Modules, err = deploy.LocalSource(absOut, filepath.Join(repo, "infra", "terraform", "modules"))
		opts.ModulesFrom = deploy.ModulesFromCheckout
	default:
		version := cliVersion()
		if version == "" {
			return exitWith(exitUsage, errors.New("--module-source: not inside a rivven-connect checkout, and this binary does not know its version (a build from a checkout); give the modules' path or address"))
		}
		opts.Modules, local = deploy.RemoteModules(version), false
		opts.ModulesFrom = "the rivven-connect repository at " + version + ", the version of the CLI that generated this root"
	}
	if err != nil {
		return exitWith(exitUsage, err)
	}
	switch {
	case *dist != "":
		opts.DistDir, err = deploy.LocalSource(absOut, *dist)
	case repo != "":
		opts.DistDir, err = deploy.LocalSource(absOut, filepath.Join(repo, "dist"))
	}
	if err != nil {
		return exitWith(exitUsage, err)
	}

	res, err := deploy.Generate(p, raw, opts)
	if err != nil {
		return exitWith(exitUsage, err)
	}
	if err := os.MkdirAll(absOut, 0o755); err != nil {
		return exitWith(exitFailed, err)
	}
	for name, b := range res.Files {
		if err := os.WriteFile(filepath.Join(absOut, name), b, 0o644); err != nil {
			return exitWith(exitFailed, err)
		}
	}
	// What was just written must pass the same checks as the modules (when
	// they are local, so that calls can be checked against them).
	if local {
		ps, err := deploy.Check(absOut)
		if err != nil {
			return exitWith(exitFailed, err)
		}
		if len(ps) > 0 {
			var b strings.Builder
			for _, p := range ps {
				fmt.Fprintf(&b, "\n  %s", p)
			}
			return exitWith(exitFailed, fmt.Errorf("the generated module does not check out against %s:%s", opts.Modules, b.String()))
		}
	}
	for _, n := range res.Notes {
		fmt.Fprintln(stderr, "note:", n)
	}
	if len(unknown) > 0 {
		fmt.Fprintf(stderr, "note: this build does not link %s; their config blocks were not checked (their functions are built where they are)\n", strings.Join(unknown, ", "))
	}
	fmt.Fprintf(stdout, "✓ wrote %s: %d function(s), %d service(s), %d topic(s) on %s\n  next: cd %s && terraform init && terraform apply (see infra/terraform/README.md)\n",
		*out, res.Functions, res.Services, res.Topics, *cloud, *out)
	return nil
}

// artifact names a function's build output the way scripts/buildfunctions
// does: after the connector's package.
func artifact(kind, connector string) string {
	if e, ok := catalog.Lookup(catalog.Kind(kind), connector); ok {
		return kind + "-" + path.Base(e.Package())
	}
	return deploy.DefaultArtifact(kind, connector)
}
