package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"github.com/valyala/fasthttp"
	"google.golang.org/protobuf/testing/protocmp"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

func TestUnknownAppAndHost(t *testing.T) {
	dial := newUpstream(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("app here") })
	pool := &fakePool{addr: "runner"}
	h := newHarness(t, pool, options{dial: dial})

	status, hdr, body := h.do(t, http.MethodGet, "http://nope.example.test/", "", nil)
	if status != http.StatusNotFound || !strings.Contains(hdr.Get("Content-Type"), "text/html") ||
		!strings.Contains(body, "There is no app named &#34;nope&#34;") {
		t.Errorf("unknown app: %d %q %q", status, hdr.Get("Content-Type"), body)
	}

	status, hdr, body = h.do(t, http.MethodGet, "http://nope.example.test/", "", http.Header{"Accept": {"application/json"}})
	var got struct{ Error string }
	if err := json.Unmarshal([]byte(body), &got); err != nil || status != http.StatusNotFound ||
		hdr.Get("Content-Type") != "application/json" || !strings.Contains(got.Error, `no app named "nope"`) {
		t.Errorf("unknown app, JSON: %d %q %q (%v)", status, hdr.Get("Content-Type"), body, err)
	}

	status, _, body = h.do(t, http.MethodGet, "http://elsewhere.example.com/", "", nil)
	if status != http.StatusNotFound || !strings.Contains(body, "is not a host this platform serves") {
		t.Errorf("unknown host: %d %q", status, body)
	}

	// "No such app" is not remembered: the app works once it exists.
	h.routes.set("nope", "app9", "v1")
	if status, _, body := h.do(t, http.MethodGet, "http://nope.example.test/", "", nil); status != 200 || body != "app here" {
		t.Errorf("after deploy: %d %q", status, body)
	}
}

func TestProxyToFastAPI(t *testing.T) {
	pool := newPythonPool(t, nil)
	h := newHarness(t, pool, options{edit: func(c *Config) {
		c.Env = mapEnv{"app1": {"GREETING": "hello"}}
	}})
	h.routes.set("demo", "app1", "v1")

	header := http.Header{
		"X-Custom":   {"yes"},
		"Connection": {"X-Secret"}, // names a hop-by-hop header
		"X-Secret":   {"do not forward"},
		"Accept":     {"application/json"},
	}
	status, _, body := h.do(t, http.MethodGet, "http://demo.example.test/echo?x=1&y=a%20b", "", header)
	if status != http.StatusOK {
		t.Fatalf("GET /echo: %d %s", status, body)
	}
	var echo struct {
		Method, Path, Query, Version, Greeting string
		Headers                                map[string]string
	}
	if err := json.Unmarshal([]byte(body), &echo); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"method": "GET", "path": "/echo", "query": "x=1&y=a%20b", "version": "v1", "greeting": "hello",
		"x-custom": "yes", "x-forwarded-host": "demo.example.test", "x-forwarded-proto": "http",
		"host": "demo.example.test", "x-secret": "", "connection": "",
	}
	got := map[string]string{
		"method": echo.Method, "path": echo.Path, "query": echo.Query, "version": echo.Version, "greeting": echo.Greeting,
	}
	for _, k := range []string{"x-custom", "x-forwarded-host", "x-forwarded-proto", "host", "x-secret", "connection"} {
		got[k] = echo.Headers[k]
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("what the app saw (-want +got):\n%s", diff)
	}
	if echo.Headers["x-forwarded-for"] == "" {
		t.Error("X-Forwarded-For not set")
	}

	status, hdr, body := h.do(t, http.MethodPost, "http://demo.example.test/items", `{"name":"widget","n":3}`,
		http.Header{"Content-Type": {"application/json"}})
	if status != http.StatusOK || hdr.Get("Content-Type") != "application/json" ||
		body != `{"received":{"name":"widget","n":3},"version":"v1"}` {
		t.Errorf("POST /items: %d %q %s", status, hdr.Get("Content-Type"), body)
	}

	wantReq := []*v1.SpecializeRequest{{AppId: "app1", Slug: "demo", Version: "v1", Entrypoint: "main:app",
		Env: map[string]string{"GREETING": "hello"}, ServeKey: "v1+entry=main:app"}}
	pool.mu.Lock()
	gotReq := pool.reqs
	pool.mu.Unlock()
	if diff := cmp.Diff(wantReq, gotReq, protocmp.Transform()); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}
	// Once per request, plus any touchBusy tick that caught one in flight.
	if n := pool.runner(0).touches.Load(); n < 2 {
		t.Errorf("runner touched %d times, want at least 2", n)
	}
}

func TestConcurrentFirstRequestsShareOneColdStart(t *testing.T) {
	pool := newPythonPool(t, nil)
	h := newHarness(t, pool, options{})
	h.routes.set("demo", "app1", "v1")

	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			resp, err := h.client.Get("http://demo.example.test/echo")
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := pool.claimCount(); got != 1 {
		t.Errorf("%d claims, want 1", got)
	}
	// The start's first byte is reported once, whichever request got it.
	if got := pool.runner(0).answers.get(); len(got) != 1 || got[0] <= 0 {
		t.Errorf("first bytes reported: %v, want one", got)
	}
	h.routes.mu.Lock()
	reads := h.routes.reads
	h.routes.mu.Unlock()
	if reads != 1 {
		t.Errorf("%d route reads, want 1", reads)
	}
}

func TestAppThatFailsToStart(t *testing.T) {
	pool := newPythonPool(t, map[string]string{"broken": brokenPy})
	h := newHarness(t, pool, options{})
	h.routes.set("demo", "app1", "broken")

	status, _, body := h.do(t, http.MethodGet, "http://demo.example.test/", "", nil)
	if status != http.StatusBadGateway || !strings.Contains(body, "ZeroDivisionError: division by zero") {
		t.Errorf("got %d %q, want 502 naming the exception", status, body)
	}
}

func TestClaimErrors(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		retryAfter string
		contains   string
	}{
		{"app failed to start",
			connect.NewError(connect.CodeFailedPrecondition, errors.New("app failed to start: ZeroDivisionError: division by zero")),
			502, "", "app failed to start: ZeroDivisionError: division by zero"},
		{"capacity", connect.NewError(connect.CodeResourceExhausted, errors.New("pool: at capacity")), 503, "1", "Every runner is busy"},
		{"unavailable", connect.NewError(connect.CodeUnavailable, errors.New("dial")), 503, "1", "Retry in a second"},
		{"deadline", connect.NewError(connect.CodeDeadlineExceeded, errors.New("app did not answer within 3s")), 504, "", "did not start: app did not answer within 3s."},
		{"bundle missing", connect.NewError(connect.CodeNotFound, errors.New("bundle")), 502, "", "Deploy it again"},
		{"plain error", errors.New("boom"), 502, "", "could not be started"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool := &fakePool{err: tt.err}
			h := newHarness(t, pool, options{})
			h.routes.set("demo", "app1", "v1")
			for i := range 2 {
				status, hdr, body := h.do(t, http.MethodGet, "http://demo.example.test/", "", http.Header{"Accept": {"application/json"}})
				var got struct{ Error string }
				_ = json.Unmarshal([]byte(body), &got)
				if status != tt.status || hdr.Get("Retry-After") != tt.retryAfter || !strings.Contains(got.Error, tt.contains) ||
					!strings.Contains(got.Error, `"demo"`) {
					t.Errorf("request %d: %d Retry-After %q %s; want %d %q containing %q", i, status,
						hdr.Get("Retry-After"), body, tt.status, tt.retryAfter, tt.contains)
				}
			}
			// A failed start is not remembered: each request tries again.
			// A runner that found the bundle missing is followed by one
			// more claim, after a fresh look-up of the route (the route
			// source puts a lost bundle back).
			want, wantReads := 2, 1
			if connect.CodeOf(tt.err) == connect.CodeNotFound {
				want, wantReads = 4, 3
			}
			if pool.claimCount() != want {
				t.Errorf("%d claims, want %d", pool.claimCount(), want)
			}
			h.routes.mu.Lock()
			reads := h.routes.reads
			h.routes.mu.Unlock()
			if reads != wantReads {
				t.Errorf("%d route look-ups, want %d", reads, wantReads)
			}
		})
	}
}

func TestRequestBodyTooLarge(t *testing.T) {
	pool := &fakePool{addr: "runner"}
	h := newHarness(t, pool, options{edit: func(c *Config) { c.MaxRequestBodySize = 1024 }})
	h.routes.set("demo", "app1", "v1")

	c, err := h.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /items HTTP/1.1\r\nHost: demo.example.test\r\nContent-Type: application/json\r\n"+
		"Accept: application/json\r\nContent-Length: 2048\r\n\r\n%s", strings.Repeat("x", 2048))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "1024 bytes") {
		t.Errorf("got %d %s, want 413", resp.StatusCode, body)
	}
	if pool.claimCount() != 0 {
		t.Errorf("%d claims for a rejected request", pool.claimCount())
	}
}

func TestShutdownReleasesRunners(t *testing.T) {
	dial := newUpstream(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") })
	pool := &fakePool{addr: "runner"}
	h := newHarness(t, pool, options{dial: dial})
	h.routes.set("demo", "app1", "v1")
	if status, _, _ := h.do(t, http.MethodGet, "http://demo.example.test/", "", nil); status != 200 {
		t.Fatalf("status %d", status)
	}
	h.client.CloseIdleConnections()
	if err := h.g.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	wait(t, pool.lastRunner().released, "runner released at Shutdown")
}

// TestWarm: Warm starts the version's runner ahead of requests, which then
// use it, and records the start at once; a start that fails says whether
// the app is at fault.
func TestWarm(t *testing.T) {
	ctx := context.Background()
	pool := &fakePool{addr: "runner"}
	h := newHarness(t, pool, options{dial: newUpstream(t, func(c *fasthttp.RequestCtx) { c.WriteString("ok") })})
	h.routes.set("demo", "app1", "v1")
	route, _ := h.routes.Route(ctx, "demo")
	if err := h.g.Warm(ctx, route); err != nil {
		t.Fatal(err)
	}
	if got := pool.lastRunner().answers.get(); len(got) != 1 || got[0] != 0 {
		t.Errorf("Answered calls after a warm start: %v; want one, with no first byte", got)
	}
	if err := h.g.Warm(ctx, route); err != nil || pool.claimCount() != 1 {
		t.Errorf("a second Warm: %v, %d claims; want nothing done", err, pool.claimCount())
	}
	if status, _, body := h.do(t, http.MethodGet, "http://demo.example.test/", "", nil); status != 200 || body != "ok" {
		t.Fatalf("GET after Warm = %d %q", status, body)
	}
	if pool.claimCount() != 1 {
		t.Errorf("%d claims; want the warmed runner to serve the request", pool.claimCount())
	}

	for _, tt := range []struct {
		err      error
		appFault bool
		reason   string
	}{
		{connect.NewError(connect.CodeFailedPrecondition, errors.New("app failed to start: NameError: x (at app.py:2)")), true, `App "other" did not start: app failed to start: NameError: x (at app.py:2)`},
		{connect.NewError(connect.CodeDeadlineExceeded, errors.New("app did not answer within 3s")), true, `App "other" did not start: app did not answer within 3s.`},
		{connect.NewError(connect.CodeResourceExhausted, errors.New("pool: at capacity")), false, "Every runner is busy"},
	} {
		pool := &fakePool{err: tt.err}
		h := newHarness(t, pool, options{})
		h.routes.set("other", "app2", "v1")
		route, _ := h.routes.Route(ctx, "other")
		var we *WarmError
		if err := h.g.Warm(ctx, route); !errors.As(err, &we) || we.AppFault() != tt.appFault || !strings.Contains(we.Error(), tt.reason) {
			t.Errorf("Warm with claim error %v = %v; want a WarmError (app fault %v) saying %q", tt.err, err, tt.appFault, tt.reason)
		}
		// A request gets the same words (and the harness is serving
		// before its cleanup shuts it down).
		_, _, body := h.do(t, http.MethodGet, "http://other.example.test/", "", http.Header{"Accept": {"application/json"}})
		var got struct{ Error string }
		if err := json.Unmarshal([]byte(body), &got); err != nil || !strings.Contains(got.Error, tt.reason) {
			t.Errorf("a request after the failed warm start: %s; want %q", body, tt.reason)
		}
	}
}
