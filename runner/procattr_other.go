//go:build unix && !linux

package runner

import "syscall"

// pythonProcAttr returns nil: outside Linux there is no parent-death signal,
// and Python ends with the agent's process group instead.
func pythonProcAttr() *syscall.SysProcAttr { return nil }

// makeUndumpable does nothing outside Linux, which has no PR_SET_DUMPABLE.
// The runner's production target is Linux; this keeps the module building
// on developers' machines.
func makeUndumpable() error { return nil }
