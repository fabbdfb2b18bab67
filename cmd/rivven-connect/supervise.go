package main

import (
	"slices"
	"strings"

	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/secrets/supervise"
)

// The commands that resolve secrets, given a pipeline with references,
// run as a child of the CLI whose stderr the parent redacts (see
// shared/secrets/supervise): a panic in a goroutine a library started, a
// fatal error or a SIGQUIT dump may quote a resolved secret, and only a
// parent can catch what the runtime writes to descriptor 2.

// superviseCommands resolve secret references and so run as a child.
var superviseCommands = []string{"validate", "check", "discover", "snapshot", "local", "run", "invoke"}

// mayReadSecrets reports whether a command may resolve secret references:
// false only when its pipeline file (-c) loads and holds none, so that a
// pipeline without references starts once, not twice. Without -c (invoke
// may take RIVVEN_PIPELINE) or with a file that does not load, it says
// yes.
func mayReadSecrets(args []string) bool {
	path := ""
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-c" || a == "--c":
			if i+1 < len(args) {
				path = args[i+1]
			}
			i++
		case strings.HasPrefix(a, "-c="), strings.HasPrefix(a, "--c="):
			_, path, _ = strings.Cut(a, "=")
		}
	}
	if path == "" {
		return true
	}
	p, err := config.Load(path, catalog.Default, config.Options{})
	return err != nil || pipeline.HasSecretRefs(p)
}

// superviseCommand runs the command as a child whose stderr is redacted and
// returns its exit code; ok is false when this command does not need it
// or this process is the child.
func superviseCommand(args []string) (code int, ok bool) {
	if len(args) == 0 || !slices.Contains(superviseCommands, args[0]) || supervise.IsChild() ||
		!mayReadSecrets(args[1:]) {
		return 0, false
	}
	return supervise.Run(args)
}
