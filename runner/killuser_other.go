//go:build !linux

package runner

// KillAll does nothing: users of their own for runners are Linux only.
func (r *RunAs) KillAll() error { return nil }
