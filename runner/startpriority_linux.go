package runner

import (
	"os"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// The real-time priorities of a start (see raiseForStart): the app's
// threads run under SCHED_FIFO at appPriority, the guard that ends their
// window one above it, so the guard gets the CPU back from them.
const (
	appPriority   = 1
	guardPriority = 2
)

// raiseForStart gives every thread of Python (process pid) a real-time
// priority (SCHED_FIFO) for at most window, from now: the app's load and
// its first answer then run without being preempted by the platform's own
// processes that they wake on their way (the agent reading the ready
// event, the gateway reading the answer's head), which otherwise take the
// CPU from the app in the middle of its first answer. Python ends it itself
// once its first request has been answered; a guard thread of the agent,
// at a priority above the app's, ends it at the end of window whatever the
// app does. The threads are raised with SCHED_RESET_ON_FORK, so a thread or
// process the app starts meanwhile runs at normal priority, and an
// unprivileged process cannot clear that flag or raise a thread of its
// own.
//
// It returns at once; the guard raises Python as soon as it runs, so a
// start waits for none of it. It needs CAP_SYS_NICE (an agent running as
// root): without it the guard cannot raise itself, and so raises nothing.
// Under the kernel's limit on real-time CPU use (95% by default), an app
// that never yields can keep no more than that of one CPU for window.
func raiseForStart(pid int, window time.Duration) {
	go guardStart(pid, window)
}

// guardStart raises pid's threads and lowers them again after window. It locks its goroutine to its thread and never unlocks it,
// so the thread, with its real-time priority, ends with the goroutine.
func guardStart(pid int, window time.Duration) {
	runtime.LockOSThread()
	if unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: guardPriority}, 0) != nil {
		return // no CAP_SYS_NICE: nothing is raised, nothing to guard
	}
	tids := threads(pid)
	raised := 0
	for _, tid := range tids {
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: appPriority, Flags: unix.SCHED_FLAG_RESET_ON_FORK}
		if unix.SchedSetAttr(tid, &attr, 0) == nil {
			raised++
		}
	}
	if raised == 0 {
		return
	}
	// The thread itself sleeps, so the kernel wakes it at the end of the
	// window and, at its priority, runs it at once; a Go timer would need
	// another of the agent's threads, which the app may keep off the CPU.
	// A signal (the Go runtime's preemption, say) ends the sleep early and
	// leaves what is left of it in ts.
	ts := unix.NsecToTimespec(window.Nanoseconds())
	for unix.Nanosleep(&ts, &ts) == unix.EINTR {
	}
	// Threads started since run at normal priority already (reset on
	// fork); those that were raised and still are go back to it. A thread
	// id whose thread has exited is left alone unless it is raised, which
	// another process's thread that took the id would not be.
	for _, tid := range tids {
		attr, err := unix.SchedGetAttr(tid, 0)
		if err != nil || attr.Policy != unix.SCHED_FIFO || attr.Priority != appPriority {
			continue
		}
		_ = unix.SchedSetAttr(tid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL}, 0)
	}
}

// threads lists the thread ids of process pid; none if it has gone.
func threads(pid int) []int {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return nil
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids
}
