// Package pidfd signals and waits for processes through Linux pidfds.
//
// A pidfd keeps naming the process it was opened for after that process
// exited, so a signal sent through it never reaches another process that
// reused the pid, and its readiness says when the process exited. Unlike
// os.Process it works for processes that are not the caller's children,
// such as the runner processes the zygote forks; it cannot tell their exit
// status, which only the parent learns.
//
// Invariant: after Exited reported true or Wait returned, Signal sends
// nothing. Opening a pidfd from a bare pid is itself racy (the pid could have
// been reused before the open); callers say in a comment why theirs is not.
//
// Used by the runner agent (package runner) and its launcher (runner/launch).
// Outside Linux, Open fails with errors.ErrUnsupported.
package pidfd
