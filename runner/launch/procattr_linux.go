package launch

import "syscall"

// agentProcAttr puts the agent in a process group of its own, which Stop
// signals as a whole, and makes the kernel kill it when the platform dies.
func agentProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
