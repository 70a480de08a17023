package gateway

import (
	"context"
	"errors"
	"testing"
	"time"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// gatedRoutes answers each Route call with the route it is sent on next.
type gatedRoutes struct {
	calls chan struct{}
	next  chan *v1.Route
}

func (g *gatedRoutes) Route(ctx context.Context, _ string) (*v1.Route, error) {
	g.calls <- struct{}{}
	select {
	case r := <-g.next:
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestRouteCacheInvalidateDuringLoad(t *testing.T) {
	src := &gatedRoutes{calls: make(chan struct{}), next: make(chan *v1.Route)}
	c := newRouteCache(src, time.Minute)
	v1Route := &v1.Route{AppId: "a", Slug: "demo", Version: "v1"}
	v2Route := &v1.Route{AppId: "a", Slug: "demo", Version: "v2"}

	// A look-up reads v1 from the source, but the route changes to v2
	// (and is invalidated) before the read returns.
	first := make(chan *v1.Route)
	go func() {
		r, _ := c.get(context.Background(), "demo")
		first <- r
	}()
	<-src.calls
	c.invalidate("demo")

	// A look-up after the invalidation does not join the stale read.
	second := make(chan *v1.Route)
	go func() {
		r, _ := c.get(context.Background(), "demo")
		second <- r
	}()
	<-src.calls
	src.next <- v1Route // the stale read completes
	if r := <-first; r != v1Route {
		t.Errorf("first look-up = %v, want v1", r)
	}
	src.next <- v2Route
	if r := <-second; r != v2Route {
		t.Errorf("second look-up = %v, want v2", r)
	}

	// v2 is cached; the stale v1 never was.
	r, err := c.get(context.Background(), "demo")
	if err != nil || r != v2Route {
		t.Errorf("cached = %v, %v; want v2", r, err)
	}
}

func TestRouteCacheDoesNotCacheMissingApps(t *testing.T) {
	routes := &mapRoutes{}
	c := newRouteCache(routes, time.Minute)
	if _, err := c.get(context.Background(), "demo"); !errors.Is(err, errAppNotFound) {
		t.Fatalf("get = %v, want errAppNotFound", err)
	}
	routes.set("demo", "a", "v1")
	if r, err := c.get(context.Background(), "demo"); err != nil || r.GetVersion() != "v1" {
		t.Fatalf("get = %v, %v; want v1", r, err)
	}
	if _, err := c.get(context.Background(), "demo"); err != nil {
		t.Fatal(err)
	}
	if routes.reads != 2 {
		t.Errorf("%d source reads, want 2", routes.reads)
	}
}

func TestRouteCacheRejectsIncompleteRoutes(t *testing.T) {
	routes := &mapRoutes{routes: map[string]*v1.Route{"demo": {AppId: "a"}}}
	c := newRouteCache(routes, time.Minute)
	if _, err := c.get(context.Background(), "demo"); !errors.Is(err, errRouteLookup) {
		t.Fatalf("get = %v, want errRouteLookup", err)
	}
}
