package gateway

import "sync"

// aborter is a long-lived exchange that can be ended early from any
// goroutine.
type aborter interface{ abort() }

// liveSet holds the exchanges that can outlast a handler (streamed
// responses, WebSocket sessions), so that Shutdown can end those still
// open.
type liveSet struct {
	mu     sync.Mutex
	closed bool
	m      map[aborter]struct{}
}

// add records a; it is false once closeAll has run.
func (s *liveSet) add(a aborter) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.m == nil {
		s.m = map[aborter]struct{}{}
	}
	s.m[a] = struct{}{}
	return true
}

// remove forgets a. Once it returns, closeAll no longer aborts a, so a may
// hand what abort would close (a pooled runner connection) to others.
func (s *liveSet) remove(a aborter) {
	s.mu.Lock()
	delete(s.m, a)
	s.mu.Unlock()
}

// closeAll aborts every exchange and refuses later ones. Aborts run under
// the lock (they only close connections) so none races with remove.
func (s *liveSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for a := range s.m {
		a.abort()
	}
}
