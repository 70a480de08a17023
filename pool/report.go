package pool

import "sync"

// reportQueue is how many records may wait for the hooks before a caller
// waits for room.
const reportQueue = 1024

// reporter runs the pool's own records (Config.Log, ColdStart and Event for
// cold starts, failures, crashes and scale-to-zero) one at a time, in the
// order they were made, on a goroutine of its own. The hooks write to the
// log store; a request waiting for a cold start must not wait for its
// record too. When the queue is full, a caller waits for room: records are
// never dropped.
type reporter struct {
	mu     sync.Mutex
	ch     chan func()
	closed bool
	done   chan struct{}
}

func newReporter() *reporter {
	r := &reporter{ch: make(chan func(), reportQueue), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for f := range r.ch {
			f()
		}
	}()
	return r
}

// report queues f; after close it runs f at once.
func (r *reporter) report(f func()) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		f()
		return
	}
	r.ch <- f
	r.mu.Unlock()
}

// close runs what is queued and returns once it has.
func (r *reporter) close() {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.ch)
	}
	r.mu.Unlock()
	<-r.done
}
