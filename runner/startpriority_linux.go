package runner

import (
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The real-time priorities of a start (see raiseForStart): the app's
// threads, and the agent's until it has answered, run under SCHED_FIFO at
// startPriority; the guard that ends the window one above them, so that it
// gets the CPU back from them.
const (
	startPriority = 1
	guardPriority = 2
)

// startRaise is the real-time priority of one start; see raiseForStart.
type startRaise struct {
	mu       sync.Mutex
	answered bool  // endAgent was called
	agent    []int // the agent's threads raised
	// guardTID is the guard's thread; done is closed once the guard has
	// returned (for tests).
	guardTID int
	done     chan struct{}
}

// raiseForStart gives Python's threads (process pid), and the agent's own,
// a real-time priority (SCHED_FIFO) for at most window from now, so that
// the app's load and first answer run without being preempted by the
// platform's processes they wake on their way: the gateway reading the
// answer's head, say, which otherwise takes the CPU from the app in the
// middle of its first answer. The agent is raised with it, or it would
// wait for the app to give up its CPU before it reads the ready event and
// answers Specialize; as a real-time task it takes the other CPU at once
// instead. The agent ends its own share once it has answered (endAgent),
// Python its own once its first request has its answer; a guard thread at
// a priority above theirs ends what is left at the end of window, whatever
// the app does.
//
// Threads are raised with SCHED_RESET_ON_FORK, so a thread or process the
// app starts meanwhile runs at normal priority; an unprivileged process
// can neither clear that flag nor raise a thread of its own. Under the
// kernel's bound on real-time CPU use (95% by default) an app that never
// yields keeps no more than that of one CPU, for window.
//
// It returns at once; the guard raises the threads as soon as it runs, so
// the start waits for none of it. It needs CAP_SYS_NICE (an agent running
// as root): without it the guard cannot raise itself, and raises nothing.
func raiseForStart(pid int, window time.Duration) *startRaise {
	r := &startRaise{done: make(chan struct{})}
	go r.guard(pid, window)
	return r
}

// endAgent puts the agent's threads back at normal priority.
func (r *startRaise) endAgent() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answered = true
	lower(r.agent)
}

// guard raises the threads and lowers them after window. It runs locked
// to its thread, which it raises above them, and puts the thread back at
// normal priority before it unlocks it. The thread must outlive the
// guard: a goroutine that ends locked ends its thread, and the thread that
// started Python in exec mode (any of the agent's threads may have) is the
// parent whose end sends Python its parent-death signal, SIGKILL.
func (r *startRaise) guard(pid int, window time.Duration) {
	defer close(r.done)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r.mu.Lock()
	r.guardTID = unix.Gettid()
	r.mu.Unlock()
	if unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: guardPriority}, 0) != nil {
		return // no CAP_SYS_NICE: nothing is raised, nothing to guard
	}
	defer func() {
		if err := unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL}, 0); err != nil {
			// Still raised: then the thread must go with the goroutine
			// after all, which leaving it locked does.
			runtime.LockOSThread()
		}
	}()
	app := raise(threads(pid))
	r.mu.Lock()
	if !r.answered {
		self := unix.Gettid()
		var agent []int
		for _, tid := range threads(os.Getpid()) {
			if tid != self {
				agent = append(agent, tid)
			}
		}
		r.agent = raise(agent)
	}
	r.mu.Unlock()
	if len(app) == 0 {
		r.endAgent()
		return
	}
	// The thread itself sleeps, so the kernel wakes it at the end of the
	// window and, at its priority, runs it at once; a Go timer would need
	// another of the agent's threads, which the app may keep off the CPU.
	// (Returning from the system call takes one of the agent's Ps, idle by
	// then: the agent has answered and waits.) A signal (the Go runtime's
	// preemption, say) ends the sleep early and leaves what is left of it
	// in ts.
	ts := unix.NsecToTimespec(window.Nanoseconds())
	for unix.Nanosleep(&ts, &ts) == unix.EINTR {
	}
	lower(app)
	r.endAgent()
}

// raise puts each of tids under SCHED_FIFO at startPriority, and returns
// those it could.
func raise(tids []int) []int {
	var raised []int
	for _, tid := range tids {
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: startPriority, Flags: unix.SCHED_FLAG_RESET_ON_FORK}
		if unix.SchedSetAttr(tid, &attr, 0) == nil {
			raised = append(raised, tid)
		}
	}
	return raised
}

// lower puts those of tids that are still at startPriority back at normal
// priority. A thread started since runs at normal priority already (reset
// on fork); a thread id whose thread has exited is left alone unless it is
// at startPriority, which another process's thread that took the id would
// not be.
func lower(tids []int) {
	for _, tid := range tids {
		attr, err := unix.SchedGetAttr(tid, 0)
		if err != nil || attr.Policy != unix.SCHED_FIFO || attr.Priority != startPriority {
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
