package supervise

import "syscall"

// childAttr kills the child when the parent dies: a parent killed with
// SIGKILL cannot forward it, and the kill meant the work too.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
