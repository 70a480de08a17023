package launch

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// agentProcAttr puts the agent in a process group of its own, which Stop
// signals as a whole, and makes the kernel kill it when the platform dies.
func agentProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// unmount detaches a file system mounted on dir, if any.
func unmount(dir string) { _ = unix.Unmount(dir, unix.MNT_DETACH) }
