package runner

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// pythonProcAttr makes the kernel kill Python when the agent dies, so an
// agent killed with SIGKILL leaves no app behind.
func pythonProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// makeUndumpable stops other processes of the same user from reading the
// agent's memory and environment (/proc/<pid>/mem, /proc/<pid>/environ),
// where the Redis credentials live.
func makeUndumpable() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	return nil
}
