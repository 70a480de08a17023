package gateway

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
	"go.uber.org/goleak"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's own sleepers, which exit on their own time: the
		// process-wide Date header refresher and DNS cache cleaner, a
		// server's idle worker cleaner (up to 10 s after Shutdown) and a
		// connection pool's cleaner (up to MaxIdleConnDuration after its
		// last connection closed).
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
	)
}

const testDomain = "example.test"

// mapRoutes is a RouteSource backed by a map.
type mapRoutes struct {
	mu     sync.Mutex
	routes map[string]*v1.Route
	reads  int
}

var _ RouteSource = (*mapRoutes)(nil)

func (m *mapRoutes) Route(_ context.Context, slug string) (*v1.Route, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	return m.routes[slug], nil
}

// set points slug at version of app appID; version "" deletes the app.
func (m *mapRoutes) set(slug, appID, version string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.routes == nil {
		m.routes = map[string]*v1.Route{}
	}
	if version == "" {
		delete(m.routes, slug)
		return
	}
	m.routes[slug] = &v1.Route{AppId: appID, Slug: slug, Version: version, Entrypoint: "main:app", OwnerId: "u1"}
}

// mapEnv is an EnvSource backed by a map.
type mapEnv map[string]map[string]string

func (m mapEnv) Env(_ context.Context, r *v1.Route) (map[string]string, error) {
	return m[r.GetAppId()], nil
}

// harness is a Gateway served on an in-memory listener (or loopback TCP),
// with the platform API upstream a net/http server on another one.
type harness struct {
	g      *Gateway
	routes *mapRoutes
	ln     net.Listener
	client *http.Client
}

// options adjust a harness; the zero value is a 404-only API.
type options struct {
	api  http.Handler      // the platform API
	edit func(*Config)     // adjusts the config before New
	dial fasthttp.DialFunc // replaces TCP to runners
	// tcp serves the gateway on a loopback port instead of in memory, for
	// tests that need client IP addresses.
	tcp bool
	// watchAfter, when set, replaces how long a request waits for its
	// response head before its client is watched.
	watchAfter time.Duration
}

// newHarness serves a Gateway over pool.
func newHarness(t *testing.T, pool Pool, o options) *harness {
	t.Helper()
	api := o.api
	if api == nil {
		api = http.NotFoundHandler()
	}
	// Loopback, not fasthttputil's in-memory listener: net/http does not
	// recognise that pipe's timeout error as a net.Error, so aborting its
	// background read cancels the context of the connection's next request.
	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	apiSrv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
	apiDone := make(chan struct{})
	go func() {
		defer close(apiDone)
		_ = apiSrv.Serve(apiLn)
	}()

	h := &harness{routes: &mapRoutes{}}
	if o.tcp {
		if h.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	} else {
		h.ln = fasthttputil.NewInmemoryListener()
	}
	cfg := Config{
		Domain:             testDomain,
		API:                func() (net.Conn, error) { return net.Dial("tcp", apiLn.Addr().String()) },
		Routes:             h.routes,
		Pool:               pool,
		MaxRequestBodySize: 1 << 20,
		ReadTimeout:        30 * time.Second,
		WriteTimeout:       30 * time.Second,
		IdleTimeout:        30 * time.Second,
		UpstreamTimeout:    30 * time.Second,
		ColdStartTimeout:   60 * time.Second,
		Concurrency:        256,
		Logger:             slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
	if o.edit != nil {
		o.edit(&cfg)
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g.dialRunner = o.dial
	if o.watchAfter > 0 {
		g.watchAfter = o.watchAfter
	}
	h.g = g
	served := make(chan error, 1)
	go func() { served <- g.Serve(h.ln) }()
	tr := &http.Transport{
		DialContext:         func(context.Context, string, string) (net.Conn, error) { return h.dial() },
		MaxIdleConnsPerHost: 100,
	}
	h.client = &http.Client{Transport: tr}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		_ = apiSrv.Shutdown(ctx)
		<-apiDone
	})
	return h
}

// dial opens a client connection to the gateway.
func (h *harness) dial() (net.Conn, error) {
	if l, ok := h.ln.(*fasthttputil.InmemoryListener); ok {
		return l.Dial()
	}
	return net.Dial("tcp", h.ln.Addr().String())
}

// do sends a request for url (whose host picks the app) and returns the
// status, headers and body.
func (h *harness) do(t *testing.T, method, url, body string, header http.Header) (int, http.Header, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// getJSON GETs url, requires 200 and decodes the JSON body.
func (h *harness) getJSON(t *testing.T, url string) map[string]any {
	t.Helper()
	status, _, body := h.do(t, http.MethodGet, url, "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET %s: status %d, body %s", url, status, body)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("GET %s: %v in %q", url, err, body)
	}
	return v
}

// wait blocks until ch is closed; the generous bound only keeps a broken
// gateway from hanging the test run.
func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// fakeRunner is a Runner whose app is whatever listens at addr.
type fakeRunner struct {
	addr     string
	done     chan struct{}
	released chan struct{}
	once     sync.Once
	touches  atomic.Int64
	answers  firstBytes
}

// firstBytes keeps what a fake runner was told by Answered.
type firstBytes struct {
	mu    sync.Mutex
	d     []time.Duration
	first chan struct{} // closed at the first report, once asked for
}

func (f *firstBytes) add(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.d = append(f.d, d)
	if len(f.d) == 1 && f.first != nil {
		close(f.first)
	}
}

// reported is closed once the runner has been told a first byte.
func (f *firstBytes) reported() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.first == nil {
		f.first = make(chan struct{})
		if len(f.d) > 0 {
			close(f.first)
		}
	}
	return f.first
}

func (f *firstBytes) get() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.d)
}

var _ Runner = (*fakeRunner)(nil)

func newFakeRunner(addr string) *fakeRunner {
	return &fakeRunner{addr: addr, done: make(chan struct{}), released: make(chan struct{})}
}

func (f *fakeRunner) Addr() string          { return f.addr }
func (f *fakeRunner) Touch()                { f.touches.Add(1) }
func (f *fakeRunner) Done() <-chan struct{} { return f.done }
func (f *fakeRunner) Release()              { f.once.Do(func() { close(f.released) }) }

func (f *fakeRunner) Answered(firstByte time.Duration) { f.answers.add(firstByte) }

// fakePool is a Pool whose Claim returns err, or else a fakeRunner for
// addr at once.
type fakePool struct {
	addr string
	err  error

	mu     sync.Mutex
	claims int
	last   *fakeRunner
}

var _ Pool = (*fakePool)(nil)

func (p *fakePool) Claim(context.Context, *v1.SpecializeRequest, func(string)) (Runner, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.claims++
	if p.err != nil {
		return nil, p.err
	}
	p.last = newFakeRunner(p.addr)
	return p.last, nil
}

func (p *fakePool) claimCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.claims
}

func (p *fakePool) lastRunner() *fakeRunner {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// newUpstream serves handler on an in-memory listener, standing in for a
// runner's app where the app's code does not matter. Runners reach it by
// the returned dial function.
func newUpstream(tb testing.TB, handler fasthttp.RequestHandler) fasthttp.DialFunc {
	ln := fasthttputil.NewInmemoryListener()
	s := &fasthttp.Server{Handler: handler}
	done := make(chan error, 1)
	go func() { done <- s.Serve(laneListener{ln}) }()
	tb.Cleanup(func() {
		if err := s.Shutdown(); err != nil {
			tb.Errorf("upstream Shutdown: %v", err)
		}
		<-done
	})
	return func(string) (net.Conn, error) { return ln.Dial() }
}

// setOwner makes slug's route an app of owner, whose apps may get
// perMinute requests a minute (0: no limit).
func (m *mapRoutes) setOwner(slug, owner string, perMinute int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.routes[slug]
	r.OwnerId, r.OwnerRequestsPerMinute = owner, perMinute
}

// laneListener makes an HTTP server a runner that speaks the gateway's lane,
// as runners do (GatewayLane in runner/bootstrap.py): see laneServerConn.
type laneListener struct{ net.Listener }

func (l laneListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &laneServerConn{Conn: c}, nil
}

// laneServerConn takes the frame heads out of what the gateway sends, so
// the server reads the HTTP requests inside, and starts the first write
// after each request it read with laneAnswer. A connection whose first byte
// is not laneRequest is passed through as it comes.
type laneServerConn struct {
	net.Conn
	plain   bool
	started bool
	left    int  // bytes of the current frame not yet read
	answer  bool // a frame was read whose answer has not begun
	head    [laneHeadSize]byte
	out     []byte // laneAnswer and the answer's first write
}

func (c *laneServerConn) Read(p []byte) (int, error) {
	if c.plain {
		return c.Conn.Read(p)
	}
	if c.left == 0 {
		if _, err := io.ReadFull(c.Conn, c.head[:1]); err != nil {
			return 0, err
		}
		if !c.started && c.head[0] != laneRequest {
			c.plain = true
			p[0] = c.head[0]
			return 1, nil
		}
		c.started = true
		if c.head[0] != laneRequest {
			return 0, fmt.Errorf("frame starts with %#x", c.head[0])
		}
		if _, err := io.ReadFull(c.Conn, c.head[1:]); err != nil {
			return 0, err
		}
		c.left = int(binary.BigEndian.Uint32(c.head[1:]))
		c.answer = true
	}
	n, err := c.Conn.Read(p[:min(len(p), c.left)])
	c.left -= n
	return n, err
}

func (c *laneServerConn) Write(p []byte) (int, error) {
	if !c.answer {
		return c.Conn.Write(p)
	}
	c.answer = false
	c.out = append(append(c.out[:0], laneAnswer), p...)
	n, err := c.Conn.Write(c.out)
	return max(n-1, 0), err
}
