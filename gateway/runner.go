package gateway

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// runnerEntry is a claimed runner, the one connection pool to it, and the
// count of gateway requests using it.
type runnerEntry struct {
	runner Runner
	client *fasthttp.HostClient
	slug   string
	appID  string
	ver    string

	// readyAt is when the runner's Claim returned. firstByte is where its
	// start's first byte stands: the first response head on e after a
	// request that waited for the start got it is reported to the pool
	// (Runner.Answered), once.
	readyAt   time.Time
	firstByte atomic.Int32

	// httpOnly is set once the runner answered a lane frame (see
	// writeRequest) in plain HTTP: it does not speak the lane, and gets
	// HTTP/1.1 from then on.
	httpOnly atomic.Bool

	// mu guards inflight and retired. Retiring waits for inflight to reach
	// zero before calling Release, so a request that picked this runner
	// never finds it released before its request reached the app.
	mu       sync.Mutex
	inflight int
	retired  bool
}

// firstByte states of a runnerEntry.
const (
	firstByteUnwanted int32 = iota // no request has waited for the start (yet)
	firstByteWanted                // one has: report the next response head
	firstByteReported
)

// waitedFor marks that a request waited for e's start.
func (e *runnerEntry) waitedFor() {
	e.firstByte.CompareAndSwap(firstByteUnwanted, firstByteWanted)
}

// answered reports the start's first byte if a request waited for it and
// this is the first response head since.
func (e *runnerEntry) answered() {
	if e.firstByte.CompareAndSwap(firstByteWanted, firstByteReported) {
		e.runner.Answered(time.Since(e.readyAt))
	}
}

// unwaited records e's start at once, with no first byte, unless a
// request waited for it (a start ahead of requests, as at a deploy's warm
// stage, would otherwise be recorded only after the pool's wait for one).
func (e *runnerEntry) unwaited() {
	if e.firstByte.CompareAndSwap(firstByteUnwanted, firstByteReported) {
		e.runner.Answered(0)
	}
}

// stopped reports whether the runner has stopped.
func (e *runnerEntry) stopped() bool {
	select {
	case <-e.runner.Done():
		return true
	default:
		return false
	}
}

// acquire counts one request in. It returns false when e takes no more
// requests (retired or stopped); otherwise the caller must call release.
func (e *runnerEntry) acquire() bool {
	if e.stopped() {
		return false
	}
	e.mu.Lock()
	ok := !e.retired
	if ok {
		e.inflight++
	}
	e.mu.Unlock()
	return ok
}

// busy reports whether requests are in flight on e.
func (e *runnerEntry) busy() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.inflight > 0
}

// release counts one request out; the last one out of a retired runner
// releases it.
func (e *runnerEntry) release() {
	e.mu.Lock()
	e.inflight--
	last := e.retired && e.inflight == 0
	e.mu.Unlock()
	if last {
		e.stop()
	}
}

// retire takes e out of service: it accepts no more requests and is
// released as soon as the requests using it are done. Idempotent.
func (e *runnerEntry) retire() {
	e.mu.Lock()
	first := !e.retired
	e.retired = true
	idle := e.inflight == 0
	e.mu.Unlock()
	if first && idle {
		e.stop()
	}
}

func (e *runnerEntry) stop() {
	e.runner.Release()
	e.client.CloseIdleConnections()
}

// runnerTable holds the runner in service for each app: at most one, for
// the app's current version.
type runnerTable struct {
	mu     sync.RWMutex
	byApp  map[string]*runnerEntry // app id -> runner in service
	closed bool
}

func newRunnerTable() *runnerTable {
	return &runnerTable{byApp: map[string]*runnerEntry{}}
}

// serving returns the running runner in service for route (the one whose
// serve key is serveKey(route), compared without building it), or nil.
func (t *runnerTable) serving(route *v1.Route) *runnerEntry {
	t.mu.RLock()
	e := t.byApp[route.GetAppId()]
	t.mu.RUnlock()
	if e == nil || !keyOf(e.ver, route) || e.stopped() {
		return nil
	}
	return e
}

// install puts e in service for its app and returns the runner it
// replaces (nil if none), which the caller must retire. It fails with
// errShuttingDown after close.
func (t *runnerTable) install(e *runnerEntry) (*runnerEntry, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errShuttingDown
	}
	old := t.byApp[e.appID]
	t.byApp[e.appID] = e
	return old, nil
}

// remove takes e out of the table if it is still in service.
func (t *runnerTable) remove(e *runnerEntry) {
	t.mu.Lock()
	if t.byApp[e.appID] == e {
		delete(t.byApp, e.appID)
	}
	t.mu.Unlock()
}

// inUse reports whether app appID has a runner in service.
func (t *runnerTable) inUse(appID string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.byApp[appID] != nil
}

// removeStale takes out of the table the runners of slug that do not serve
// route (all of them when route is nil) and returns them for retiring.
func (t *runnerTable) removeStale(slug string, route *v1.Route) []*runnerEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	var stale []*runnerEntry
	for id, e := range t.byApp {
		if e.slug != slug || (route != nil && e.appID == route.GetAppId() && keyOf(e.ver, route)) {
			continue
		}
		delete(t.byApp, id)
		stale = append(stale, e)
	}
	return stale
}

// touchBusy touches the runners in service that have requests in flight.
// (A retired runner still serving its last requests is about to be
// released anyway.)
func (t *runnerTable) touchBusy() {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, e := range t.byApp {
		if e.busy() {
			e.runner.Touch()
		}
	}
}

// close empties the table, refuses further installs, and returns the
// runners that were in service.
func (t *runnerTable) close() []*runnerEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	all := make([]*runnerEntry, 0, len(t.byApp))
	for id, e := range t.byApp {
		all = append(all, e)
		delete(t.byApp, id)
	}
	return all
}
