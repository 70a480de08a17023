package gateway

import (
	"testing"

	"github.com/valyala/fasthttp"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

func TestRunnerEntryReleasesAfterRequestsInFlight(t *testing.T) {
	r := newFakeRunner("runner")
	e := &runnerEntry{runner: r, client: &fasthttp.HostClient{Addr: "runner"}}
	if !e.acquire() || !e.acquire() {
		t.Fatal("acquire on a fresh runner failed")
	}
	e.retire()
	if e.acquire() {
		t.Error("acquire succeeded after retire")
	}
	e.release()
	if isClosed(r.released) {
		t.Fatal("released with a request still in flight")
	}
	e.release()
	if !isClosed(r.released) {
		t.Fatal("not released after the last request")
	}
	e.retire() // idempotent
}

func TestRunnerEntryStopped(t *testing.T) {
	r := newFakeRunner("runner")
	e := &runnerEntry{runner: r, client: &fasthttp.HostClient{Addr: "runner"}}
	close(r.done)
	if e.acquire() {
		t.Error("acquire succeeded on a stopped runner")
	}
}

func TestRunnerTable(t *testing.T) {
	tab := newRunnerTable()
	mk := func(slug, app string, r *v1.Route) *runnerEntry {
		return &runnerEntry{runner: newFakeRunner(""), client: &fasthttp.HostClient{}, slug: slug, appID: app, ver: serveKey(r)}
	}
	r1 := &v1.Route{AppId: "a", Version: "v1", Entrypoint: "app.py"}
	r2 := &v1.Route{AppId: "a", Version: "v2", Entrypoint: "app.py"}
	a1 := mk("demo", "a", r1)
	if old, err := tab.install(a1); old != nil || err != nil {
		t.Fatalf("install = %v, %v", old, err)
	}
	if tab.serving(r1) != a1 || tab.serving(r2) != nil {
		t.Error("active does not match by version")
	}
	a2 := mk("demo", "a", r2)
	if old, _ := tab.install(a2); old != a1 {
		t.Errorf("install of v2 replaced %v, want v1", old)
	}
	tab.remove(a1) // no longer in service: no effect
	if tab.serving(r2) != a2 {
		t.Error("remove of a replaced runner removed its successor")
	}
	if stale := tab.removeStale("demo", r2); len(stale) != 0 {
		t.Errorf("removeStale kept-version removed %d", len(stale))
	}
	// The same files with another entrypoint, environment or packages
	// need another runner.
	for _, r := range []*v1.Route{
		{AppId: "a", Version: "v2", Entrypoint: "main.py"},
		{AppId: "a", Version: "v2", Entrypoint: "app.py", EnvRev: "2"},
		{AppId: "a", Version: "v2", Entrypoint: "app.py", Deps: "d2"},
		{AppId: "a", Version: "v2", Entrypoint: "app.p"},
		{AppId: "a", Version: "v", Entrypoint: "app.py"},
	} {
		if tab.serving(r) != nil {
			t.Errorf("the runner of %v serves %v", r2, r)
		}
	}
	// keyOf agrees with serveKey.
	routes := []*v1.Route{r1, r2, {Version: "v2", Entrypoint: "app.py", EnvRev: "2", Deps: "d"}, {Version: "v2", Entrypoint: "app.py", Deps: "d"},
		{Version: "v2", EnvRev: "2"}, {Version: "v2+entry=app.py"}}
	for _, a := range routes {
		for _, b := range routes {
			if got, want := keyOf(serveKey(a), b), serveKey(a) == serveKey(b); got != want {
				t.Errorf("keyOf(serveKey(%v), %v) = %v, want %v", a, b, got, want)
			}
		}
	}
	if stale := tab.removeStale("demo", nil); len(stale) != 1 || stale[0] != a2 {
		t.Errorf("removeStale(nil) = %v", stale)
	}
	if all := tab.close(); len(all) != 0 {
		t.Errorf("close returned %d", len(all))
	}
	if _, err := tab.install(mk("x", "b", r1)); err == nil {
		t.Error("install after close succeeded")
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestRunnerTableTouchesBusyRunners(t *testing.T) {
	tab := newRunnerTable()
	busy, idle := newFakeRunner(""), newFakeRunner("")
	for app, r := range map[string]*fakeRunner{"busy": busy, "idle": idle} {
		ver := serveKey(&v1.Route{AppId: app, Version: "v1"})
		if _, err := tab.install(&runnerEntry{runner: r, client: &fasthttp.HostClient{}, slug: app, appID: app, ver: ver}); err != nil {
			t.Fatal(err)
		}
	}
	e := tab.serving(&v1.Route{AppId: "busy", Version: "v1"})
	if !e.acquire() {
		t.Fatal("acquire failed")
	}
	tab.touchBusy()
	e.release()
	tab.touchBusy()
	if b, i := busy.touches.Load(), idle.touches.Load(); b != 1 || i != 0 {
		t.Errorf("touches: busy %d, idle %d; want 1, 0", b, i)
	}
}
