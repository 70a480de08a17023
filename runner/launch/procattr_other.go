//go:build unix && !linux

package launch

import "syscall"

// agentProcAttr puts the agent in a process group of its own, which Stop
// signals as a whole. Outside Linux there is no parent-death signal.
func agentProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
