package main

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/secrets"
)

// The Go runtime writes what no code can intercept straight to file
// descriptor 2: an unrecovered panic of a goroutine a library started, a
// fatal error, a SIGQUIT dump. Any of them may quote a resolved secret
// (a panic value holding a DSN). So the commands that resolve secrets,
// given a pipeline with references, run as a child of the CLI, whose descriptor 2 is a pipe the parent copies
// to the real stderr through secrets.StreamRedactor. The child learns the
// values, so it sends each one to the parent and waits for its
// acknowledgement before using it: by the time the child could print a
// value, the parent redacts it.
//
// The child writes its own logs and status straight to the real stderr
// (handed over as descriptor 3, already redacted by secrets.RedactWriter),
// so terminal detection and the order of its lines are as without the
// parent; only what bypasses the CLI's writers takes the pipe.

// superviseEnv marks the child; its value is "<stderr fd>,<values fd>,<ack fd>".
const superviseEnv = "RIVVEN_CONNECT_SUPERVISED"

// superviseCommands resolve secret references and so run as a child.
var superviseCommands = []string{"validate", "check", "discover", "snapshot", "local", "run", "invoke"}

// childStderr returns the stderr the CLI writes to: in a supervised
// child the real one the parent handed over (after connecting the value
// channel); else os.Stderr.
func childStderr() *os.File {
	v := os.Getenv(superviseEnv)
	if v == "" {
		return os.Stderr
	}
	os.Unsetenv(superviseEnv)
	errF, valF, ackF := os.NewFile(3, "stderr"), os.NewFile(4, "secret-values"), os.NewFile(5, "secret-acks")
	for _, f := range []*os.File{errF, valF, ackF} {
		if f == nil {
			return os.Stderr
		}
		if _, err := f.Stat(); err != nil {
			return os.Stderr
		}
	}
	var mu sync.Mutex
	secrets.Share(func(value string) {
		mu.Lock()
		defer mu.Unlock()
		msg := binary.BigEndian.AppendUint32(nil, uint32(len(value)))
		if _, err := valF.Write(append(msg, value...)); err != nil {
			return
		}
		var ack [1]byte
		_, _ = io.ReadFull(ackF, ack[:])
	})
	return errF
}

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

// supervise runs the command as a child whose stderr is redacted and
// returns its exit code; ok is false when this command does not need it
// or this process is the child.
func supervise(args []string) (code int, ok bool) {
	if len(args) == 0 || !slices.Contains(superviseCommands, args[0]) || os.Getenv(superviseEnv) != "" ||
		!mayReadSecrets(args[1:]) {
		return 0, false
	}
	exe, err := os.Executable()
	if err != nil {
		return 0, false
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return 0, false
	}
	valR, valW, err := os.Pipe()
	if err != nil {
		return 0, false
	}
	ackR, ackW, err := os.Pipe()
	if err != nil {
		return 0, false
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, errW
	cmd.ExtraFiles = []*os.File{os.Stderr, valW, ackR}
	cmd.Env = append(os.Environ(), superviseEnv+"=3,4,5")
	cmd.SysProcAttr = childAttr()
	// Signals go to the child, which stops as it would on its own; the
	// parent ends when the child does. (A terminal's Ctrl-C reaches both:
	// the child takes a second interrupt as the first.)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 0, false
	}
	errW.Close()
	valW.Close()
	ackR.Close()

	go func() {
		// Each value is remembered before it is acknowledged, so before
		// the child can write it.
		defer ackW.Close()
		var n [4]byte
		for {
			if _, err := io.ReadFull(valR, n[:]); err != nil {
				return
			}
			v := make([]byte, binary.BigEndian.Uint32(n[:]))
			if _, err := io.ReadFull(valR, v); err != nil {
				return
			}
			secrets.Remember(string(v))
			if _, err := ackW.Write([]byte{1}); err != nil {
				return
			}
		}
	}()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		w := secrets.StreamRedactor(os.Stderr)
		_, _ = io.Copy(w, errR)
		_ = w.Close()
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var werr error
wait:
	for {
		select {
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
		case werr = <-exited:
			break wait
		}
	}
	// A process the child started may hold the pipe open: its output is
	// copied for a moment, not waited for.
	select {
	case <-copied:
	case <-time.After(2 * time.Second):
	}
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), true
		}
		return ee.ExitCode(), true
	}
	if werr != nil {
		return exitFailed, true
	}
	return exitOK, true
}
