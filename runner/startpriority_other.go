//go:build unix && !linux

package runner

import "time"

// raiseForStart does nothing outside Linux, whose real-time scheduling
// policy and SCHED_RESET_ON_FORK it relies on.
func raiseForStart(pid int, window time.Duration) {}
