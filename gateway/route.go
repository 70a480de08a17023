package gateway

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// routeCache remembers the route of every slug it has looked up. There is
// no TTL: Gateway.Invalidate drops a slug's entry when its route changes.
// "No such app" is not cached, so an app is reachable as soon as its first
// route exists; concurrent look-ups of one slug share one RouteSource call.
// Cached routes are shared between requests and never modified.
type routeCache struct {
	src     RouteSource
	timeout time.Duration

	mu     sync.RWMutex
	routes map[string]*v1.Route
	// gens counts each slug's invalidations. A load stores its result
	// only if the count did not move while it ran; without that, a load
	// that read the old route just before an Invalidate would cache it
	// for good.
	gens map[string]uint64

	flight singleflight.Group
}

func newRouteCache(src RouteSource, timeout time.Duration) *routeCache {
	return &routeCache{src: src, timeout: timeout, routes: map[string]*v1.Route{}, gens: map[string]uint64{}}
}

// get returns slug's route, from the cache or else from the RouteSource.
// It returns errAppNotFound when there is no such app.
func (c *routeCache) get(base context.Context, slug string) (*v1.Route, error) {
	c.mu.RLock()
	r := c.routes[slug]
	c.mu.RUnlock()
	if r != nil {
		return r, nil
	}
	return c.load(base, slug)
}

// load reads slug's route from the RouteSource, joining a read already
// under way, and caches it.
func (c *routeCache) load(base context.Context, slug string) (*v1.Route, error) {
	v, err, _ := c.flight.Do(slug, func() (any, error) { return c.fill(base, slug) })
	if err != nil {
		return nil, err
	}
	return v.(*v1.Route), nil
}

func (c *routeCache) fill(base context.Context, slug string) (*v1.Route, error) {
	gen := c.generation(slug)
	ctx, cancel := context.WithTimeout(base, c.timeout)
	defer cancel()
	r, err := c.src.Route(ctx, slug)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %s: %w", errRouteLookup, slug, err)
	case r == nil:
		return nil, fmt.Errorf("%w: %s", errAppNotFound, slug)
	case r.GetAppId() == "" || r.GetVersion() == "":
		return nil, fmt.Errorf("%w: %s: route has no app id or version", errRouteLookup, slug)
	}
	c.mu.Lock()
	if c.gens[slug] == gen {
		c.routes[slug] = r
	}
	c.mu.Unlock()
	return r, nil
}

// invalidate drops slug's route and makes look-ups already under way
// neither cache their result nor hand it to later callers. It returns
// slug's new generation.
func (c *routeCache) invalidate(slug string) uint64 {
	c.mu.Lock()
	delete(c.routes, slug)
	c.gens[slug]++
	gen := c.gens[slug]
	c.mu.Unlock()
	c.flight.Forget(slug)
	return gen
}

// generation is the number of times slug was invalidated.
func (c *routeCache) generation(slug string) uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gens[slug]
}
