package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// maxColdStarts bounds how many runners one request may wait for: a runner
// that stops between its claim and the request's use of it (a crash loop)
// is replaced once, then the request fails.
const maxColdStarts = 2

// start is one cold start of an app version, shared by every request that
// waits for it. Its entry is made as soon as the pool has picked the
// runner (see Pool.Claim's picked), before the runner serves: one waiting
// request may then be sent ahead on it.
type start struct {
	done chan struct{} // closed once e and err are final
	e    *runnerEntry
	err  error

	picked chan struct{} // closed once ahead is set
	ahead  *runnerEntry
	taken  atomic.Bool // a request is being sent ahead
}

// runnerFor returns a runner serving route's version, counted in for one
// request (the caller must call release), cold starting one if needed.
//
// If ahead is set (the request may be sent before its runner serves; see
// sendsAhead) and the request waits for a start, runnerFor may return
// sooner, with the start's entry and a wait function instead: the caller
// sends the request, then calls wait, which returns once the start is
// over, having counted the request in on success (the entry's runner is
// set only then).
func (g *Gateway) runnerFor(slug string, route *v1.Route, ahead bool) (e *runnerEntry, wait func() error, err error) {
	for range maxColdStarts {
		if e := g.runners.serving(route); e != nil && e.acquire() {
			return e, nil, nil
		}
		s := g.coldStart(slug, route)
		if ahead && g.awaitPicked(s) {
			return s.ahead, func() error { return g.useStarted(s, slug, route) }, nil
		}
		if err := g.awaitStart(s, slug, route); err != nil {
			return nil, nil, err
		}
		if s.e.acquire() {
			s.e.waitedFor()
			return s.e, nil, nil
		}
	}
	return nil, nil, fmt.Errorf("%w: %s@%s", errRunnerGone, slug, route.GetVersion())
}

// coldStart returns the one cold start of route's app version, starting
// it if no request has. The start runs on its own clock, not the caller's:
// waiters that arrive later share it, and it outlives a waiter that gives
// up.
func (g *Gateway) coldStart(slug string, route *v1.Route) *start {
	key := route.GetAppId() + "\x00" + serveKey(route)
	g.startsMu.Lock()
	defer g.startsMu.Unlock()
	if s := g.starts[key]; s != nil {
		return s
	}
	s := &start{done: make(chan struct{}), picked: make(chan struct{})}
	g.starts[key] = s
	go func() {
		s.e, s.err = g.startRunner(slug, route, s)
		g.startsMu.Lock()
		delete(g.starts, key)
		g.startsMu.Unlock()
		close(s.done)
	}()
	return s
}

// awaitPicked waits until s has picked its runner or is over, and reports
// whether the caller is the one request to send ahead on it.
func (g *Gateway) awaitPicked(s *start) bool {
	select {
	case <-s.picked:
		return s.taken.CompareAndSwap(false, true)
	case <-s.done:
		return false
	}
}

// awaitStart waits for s to be over and returns its error. The start itself
// is bounded by ColdStartTimeout through its context; this timer keeps a
// Pool that ignores its context from holding requests forever.
func (g *Gateway) awaitStart(s *start, slug string, route *v1.Route) error {
	timer := time.NewTimer(g.cfg.ColdStartTimeout)
	defer timer.Stop()
	select {
	case <-s.done:
		return s.err
	case <-timer.C:
		return fmt.Errorf("%w: %s@%s: %w", errColdStart, slug, route.GetVersion(), context.DeadlineExceeded)
	}
}

// useStarted is the wait of a request sent ahead on s's runner: once s is
// over, it counts the request in on the runner s started, which is the one
// it was sent to. A start that failed, or a runner gone already, ends the
// request with that error: it was never answered, and the caller closes
// its connection.
func (g *Gateway) useStarted(s *start, slug string, route *v1.Route) error {
	if err := g.awaitStart(s, slug, route); err != nil {
		return err
	}
	if s.e != s.ahead || !s.e.acquire() {
		return fmt.Errorf("%w: %s@%s", errRunnerGone, slug, route.GetVersion())
	}
	s.e.waitedFor()
	return nil
}

// serveKey identifies what a runner serves: the route's version and what
// else of the route it is started with. A route whose entrypoint, env_rev
// (new environment variables, secrets or database credentials) or deps
// (the same files, with packages installed anew) changed needs a new
// runner just as a new version does.
func serveKey(route *v1.Route) string {
	key := route.GetVersion() + "+entry=" + route.GetEntrypoint()
	if rev := route.GetEnvRev(); rev != "" {
		key += "+env=" + rev
	}
	if d := route.GetDeps(); d != "" {
		key += "+deps=" + d
	}
	return key
}

// keyOf reports whether key is serveKey(route), without building it.
func keyOf(key string, route *v1.Route) bool {
	key, ok := strings.CutPrefix(key, route.GetVersion())
	if !ok {
		return false
	}
	parts := [...][2]string{{"+entry=", route.GetEntrypoint()}, {"+env=", route.GetEnvRev()}, {"+deps=", route.GetDeps()}}
	for i, p := range parts {
		if i > 0 && p[1] == "" {
			continue // left out of the key
		}
		if key, ok = strings.CutPrefix(key, p[0]); !ok {
			return false
		}
		if key, ok = strings.CutPrefix(key, p[1]); !ok {
			return false
		}
	}
	return key == ""
}

// startRunner claims a runner for route's version, puts it in service in
// place of the app's previous runner (which is retired), and watches it.
// As soon as the pool has picked the runner, s.ahead is its entry (without
// its runner yet), for a request to be sent ahead on.
func (g *Gateway) startRunner(slug string, route *v1.Route, s *start) (*runnerEntry, error) {
	// A start that finished just before this one began has done the work.
	if e := g.runners.serving(route); e != nil {
		return e, nil
	}
	if !g.enter() {
		return nil, errShuttingDown
	}
	defer g.bg.Done()

	ctx, cancel := context.WithTimeout(g.base, g.cfg.ColdStartTimeout)
	defer cancel()
	key := serveKey(route)
	req := &v1.SpecializeRequest{
		AppId:      route.GetAppId(),
		Slug:       slug,
		Version:    route.GetVersion(),
		Entrypoint: route.GetEntrypoint(),
		Compiled:   route.GetCompiled(),
		Deps:       route.GetDeps(),
		ServeKey:   key,
	}
	if g.cfg.Env != nil {
		env, err := g.cfg.Env.Env(ctx, route)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: env: %w", errColdStart, slug, err)
		}
		req.Env = env
	}
	newEntry := func(addr string) *runnerEntry {
		return &runnerEntry{client: g.runnerClient(addr), slug: slug, appID: route.GetAppId(), ver: key}
	}
	picked := func(addr string) {
		if s.ahead == nil {
			s.ahead = newEntry(addr)
			close(s.picked)
		}
	}
	r, err := g.cfg.Pool.Claim(ctx, req, picked)
	if connect.CodeOf(err) == connect.CodeNotFound {
		// The runner found the version's code (or its dependencies)
		// missing from the bundle store, which is a cache: a fresh look-up
		// of the route has the RouteSource put them back, and one more
		// runner is claimed.
		g.routes.invalidate(slug)
		if _, lerr := g.routes.load(ctx, slug); lerr == nil {
			r, err = g.cfg.Pool.Claim(ctx, req, picked)
		}
	}
	if err != nil {
		// A request sent ahead is never answered: its handler closes its
		// connection on this error.
		if ctx.Err() != nil {
			// Our own bound ran out: the pool's words for it (a context
			// error, or "no runner became ready") would not name it.
			return nil, fmt.Errorf("%w: %s@%s: %w: %w", errColdStart, slug, route.GetVersion(), ctx.Err(), err)
		}
		return nil, fmt.Errorf("%w: %s@%s: %w", errColdStart, slug, route.GetVersion(), err)
	}
	e := s.ahead
	if e == nil || e.client.Addr != r.Addr() {
		e = newEntry(r.Addr())
	}
	e.runner, e.readyAt = r, time.Now()
	old, err := g.runners.install(e)
	if err != nil {
		e.stop()
		return nil, err
	}
	if old != nil {
		old.retire()
	}
	// Adding to bg is safe here: this goroutine is itself counted in it.
	g.bg.Add(1)
	go g.watch(e)
	g.startTouching()
	return e, nil
}

// watch takes e out of service once its runner stops, so the next request
// cold starts a new one.
func (g *Gateway) watch(e *runnerEntry) {
	defer g.bg.Done()
	select {
	case <-e.runner.Done():
		g.runners.remove(e)
		e.retire()
	case <-g.base.Done():
		// Shutdown retires every runner in the table.
	}
}

// refresh re-reads slug's route after an Invalidate and retires the
// runners that no longer serve it: all of the app's when it is gone, the
// old version's when it changed. Requests in flight on a retired runner
// complete. When the app is in use (it has a runner) and its version
// changed, the new version is started first (pre-warmed), so the next
// request after a redeploy does not wait for a cold start.
func (g *Gateway) refresh(slug string, gen uint64) {
	route, err := g.routes.load(g.base, slug)
	switch {
	case err == nil:
	case errors.Is(err, errAppNotFound):
		route = nil
	default:
		g.log.Warn("refresh route after invalidation", "slug", slug, "err", err)
		return
	}
	if g.routes.generation(slug) != gen {
		return // invalidated again meanwhile: a newer refresh decides
	}
	if route != nil && g.runners.inUse(route.GetAppId()) && g.runners.serving(route) == nil {
		// Installing the new version's runner retires the old one. If the
		// start fails, removeStale below still retires the old version, so
		// requests see the new version's error rather than old code.
		s := g.coldStart(slug, route)
		if err := g.awaitStart(s, slug, route); err != nil {
			g.log.Info("pre-warm after redeploy failed", "slug", slug, "err", err)
		} else {
			s.e.unwaited() // recorded now, not after the pool's wait for a first byte
		}
	}
	for _, e := range g.runners.removeStale(slug, route) {
		e.retire()
	}
}

// WarmError is why Warm could not start a runner, in words for the app's
// owner (the same a request would have been answered with).
type WarmError struct {
	Reason   string
	appFault bool
}

func (e *WarmError) Error() string { return e.Reason }

// AppFault reports whether the app itself failed to start (its import
// raised, or it did not answer in time); if not, the platform could not
// start it right now (every runner busy, say).
func (e *WarmError) AppFault() bool { return e.appFault }

// Warm starts a runner for route's version unless one serves it, so that
// the first request after a deploy does not wait for a cold start, and
// waits until it serves. The start is the one requests would share (see
// coldStart); it runs on its own clock, and ctx only bounds the wait.
// The runner then serves as any other, and the reaper stops it once the
// app has been idle for the idle timeout. A failed start is a *WarmError.
func (g *Gateway) Warm(ctx context.Context, route *v1.Route) error {
	slug := route.GetSlug()
	if e := g.runners.serving(route); e != nil {
		e.unwaited() // started ahead of requests, as after a redeploy (see refresh)
		return nil
	}
	s := g.coldStart(slug, route)
	select {
	case <-s.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if s.err == nil {
		s.e.unwaited()
		return nil
	}
	var ce *connect.Error
	appFault := errors.As(s.err, &ce) && (ce.Code() == connect.CodeFailedPrecondition || ce.Code() == connect.CodeDeadlineExceeded) ||
		errors.Is(s.err, errColdStart) && isTimeout(s.err)
	return &WarmError{Reason: classify(s.err, slug, &g.cfg).reason, appFault: appFault}
}
