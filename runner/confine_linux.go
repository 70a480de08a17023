package runner

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// LandlockABI is the version of Landlock this machine's kernel has, 0
// where it has none (or it is turned off). Runners confine their apps
// with what it has (see the agent's --confine): from 1 their writes, from
// 4 their TCP listeners and from 6 their signals.
func LandlockABI() int {
	const createRulesetVersion = 1 // LANDLOCK_CREATE_RULESET_VERSION
	abi, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, createRulesetVersion)
	if errno != 0 {
		return 0
	}
	return int(abi)
}

// CanForbidUnixSockets says whether runners on this machine forbid their
// apps Unix sockets (bootstrap.py's forbid_unix_sockets, with --confine):
// its seccomp filter knows the system calls of amd64 and arm64 only, and
// needs a kernel with seccomp.
func CanForbidUnixSockets() bool {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		return false
	}
	_, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0)
	return err == nil
}
