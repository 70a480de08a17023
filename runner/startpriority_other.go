//go:build unix && !linux

package runner

import "time"

// startRaise does nothing outside Linux, whose real-time scheduling policy
// and SCHED_RESET_ON_FORK raiseForStart relies on.
type startRaise struct{}

func raiseForStart(pid int, window time.Duration) *startRaise { return &startRaise{} }

func (*startRaise) endAgent() {}
