// Package supervise runs a process that resolves secrets as a child of
// itself whose file descriptor 2 is redacted.
//
// The Go runtime writes what no code can intercept straight to file
// descriptor 2: an unrecovered panic of a goroutine a library started, a
// fatal error, a SIGQUIT dump. Any of them may quote a resolved secret
// (a panic value holding a DSN). So a program that resolves secrets runs
// itself again as a child (Run), whose descriptor 2 is a pipe the parent
// copies to the real stderr through secrets.StreamRedactor. The child
// learns the values, so it sends each one to the parent and waits for its
// acknowledgement before using it (Child sets that up through
// secrets.Share): by the time the child could print a value, the parent
// redacts it.
//
// The child writes its own logs and status straight to the real stderr
// (handed over as descriptor 3; Child returns it), so terminal detection
// and the order of its lines are as without the parent; only what
// bypasses the program's writers takes the pipe.
//
// The CLI and the function binaries (shared/host) use it, each only when
// its pipeline holds secret references: the cost is one more start of the
// binary.
package supervise

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/rivven/rivven-connect/shared/secrets"
)

// Env marks the child; its value is "<stderr fd>,<values fd>,<ack fd>".
const Env = "RIVVEN_CONNECT_SUPERVISED"

// IsChild reports whether this process is a supervised child (before
// Child has consumed the marker).
func IsChild() bool { return os.Getenv(Env) != "" }

// Child returns the stderr the program writes to: in a supervised child
// the real one the parent handed over (after connecting the value
// channel); else os.Stderr. Call it once, early in main.
func Child() *os.File {
	v := os.Getenv(Env)
	if v == "" {
		return os.Stderr
	}
	os.Unsetenv(Env)
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

// Run runs this executable again with args (and this environment) as a
// child whose stderr is redacted, and returns its exit code: its own, or
// 128+signal when a signal ended it. ok is false when this process is the
// child already or the child could not be started; the caller then runs
// the work itself.
func Run(args []string) (code int, ok bool) {
	if IsChild() {
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
	cmd.Env = append(os.Environ(), Env+"=3,4,5")
	cmd.SysProcAttr = childAttr()
	// Signals go to the child, which stops as it would on its own; the
	// parent ends when the child does. (A terminal's Ctrl-C reaches both:
	// the child takes a second interrupt as the first.)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		for _, f := range []*os.File{errR, errW, valR, valW, ackR, ackW} {
			f.Close()
		}
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
		return 1, true
	}
	return 0, true
}
