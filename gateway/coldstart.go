package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// maxColdStarts bounds how many runners one request may wait for: a runner
// that stops between its claim and the request's use of it (a crash loop)
// is replaced once, then the request fails.
const maxColdStarts = 2

// runnerFor returns a runner serving route's version, counted in for one
// request (the caller must call release), cold starting one if needed.
func (g *Gateway) runnerFor(slug string, route *v1.Route) (*runnerEntry, error) {
	for range maxColdStarts {
		if e := g.runners.active(route.GetAppId(), serveKey(route)); e != nil && e.acquire() {
			return e, nil
		}
		e, err := g.coldStart(slug, route)
		if err != nil {
			return nil, err
		}
		if e.acquire() {
			e.waitedFor()
			return e, nil
		}
	}
	return nil, fmt.Errorf("%w: %s@%s", errRunnerGone, slug, route.GetVersion())
}

// coldStart waits for the one cold start of route's app version, starting
// it if no request has. The start runs on its own clock, not the caller's:
// waiters that arrive later share it, and it outlives a waiter that gives
// up.
func (g *Gateway) coldStart(slug string, route *v1.Route) (*runnerEntry, error) {
	key := route.GetAppId() + "\x00" + serveKey(route)
	ch := g.starts.DoChan(key, func() (any, error) { return g.startRunner(slug, route) })
	// The start itself is bounded by ColdStartTimeout through its context;
	// this timer keeps a Pool that ignores its context from holding
	// requests forever.
	timer := time.NewTimer(g.cfg.ColdStartTimeout)
	defer timer.Stop()
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*runnerEntry), nil
	case <-timer.C:
		return nil, fmt.Errorf("%w: %s@%s: %w", errColdStart, slug, route.GetVersion(), context.DeadlineExceeded)
	}
}

// serveKey identifies what a runner serves: the route's version and, when
// set, its environment revision. A route whose env_rev changed (new
// environment variables, secrets or database credentials) needs a new
// runner just as a new version does.
func serveKey(route *v1.Route) string {
	if rev := route.GetEnvRev(); rev != "" {
		return route.GetVersion() + "+" + rev
	}
	return route.GetVersion()
}

// startRunner claims a runner for route's version, puts it in service in
// place of the app's previous runner (which is retired), and watches it.
func (g *Gateway) startRunner(slug string, route *v1.Route) (*runnerEntry, error) {
	// A start that finished just before this one began has done the work.
	if e := g.runners.active(route.GetAppId(), serveKey(route)); e != nil {
		return e, nil
	}
	if !g.enter() {
		return nil, errShuttingDown
	}
	defer g.bg.Done()

	ctx, cancel := context.WithTimeout(g.base, g.cfg.ColdStartTimeout)
	defer cancel()
	req := &v1.SpecializeRequest{
		AppId:      route.GetAppId(),
		Slug:       slug,
		Version:    route.GetVersion(),
		Entrypoint: route.GetEntrypoint(),
	}
	if g.cfg.Env != nil {
		env, err := g.cfg.Env.Env(ctx, route)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: env: %w", errColdStart, slug, err)
		}
		req.Env = env
	}
	r, err := g.cfg.Pool.Claim(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s@%s: %w", errColdStart, slug, route.GetVersion(), err)
	}
	e := &runnerEntry{
		runner:  r,
		client:  g.runnerClient(r.Addr()),
		slug:    slug,
		appID:   route.GetAppId(),
		ver:     serveKey(route),
		readyAt: time.Now(),
	}
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
	if route != nil && g.runners.inUse(route.GetAppId()) && g.runners.active(route.GetAppId(), serveKey(route)) == nil {
		// Installing the new version's runner retires the old one. If the
		// start fails, removeStale below still retires the old version, so
		// requests see the new version's error rather than old code.
		if _, err := g.coldStart(slug, route); err != nil {
			g.log.Info("pre-warm after redeploy failed", "slug", slug, "err", err)
		}
	}
	for _, e := range g.runners.removeStale(slug, route) {
		e.retire()
	}
}
