//go:build !linux

package runner

// LandlockABI is 0: Landlock is Linux only.
func LandlockABI() int { return 0 }

// CanForbidUnixSockets is false: seccomp is Linux only.
func CanForbidUnixSockets() bool { return false }
