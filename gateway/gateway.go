package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/gofastapi/gofastapi/gateway/ownerlimit"
)

// defaultOwnerSync is how often owners' request counts are shared when
// Config.OwnerSync is 0.
const defaultOwnerSync = 100 * time.Millisecond

// Gateway is the platform's HTTP/1.1 edge: the apex host reaches the
// platform API, {slug}.{domain} reaches app slug. It is safe for
// concurrent use.
type Gateway struct {
	cfg     Config
	domain  string // cfg.Domain, lower-case
	log     *slog.Logger
	server  *fasthttp.Server
	api     *fasthttp.HostClient
	routes  *routeCache
	domains *domainCache // nil without Config.Domains
	runners *runnerTable
	// starts holds the cold start under way for each app version (app id
	// and serve key): one at a time.
	startsMu sync.Mutex
	starts   map[string]*start
	live     liveSet  // streamed responses and WebSocket sessions, for Shutdown
	conns    *ipLimit // client connections per IP, across listeners
	owners   ownerlimit.Limits

	// touching starts touchBusy with the first runner.
	touching sync.Once

	// dialRunner connects to a runner's address; nil means TCP. Tests and
	// benchmarks replace it to reach in-memory upstreams.
	dialRunner fasthttp.DialFunc
	// watchAfter is how long a request waits for its response head before
	// its client is watched for a hang-up (see awaitHead); tests shorten it.
	watchAfter time.Duration

	// base is cancelled by Shutdown; cold starts and background work
	// derive from it.
	base   context.Context
	cancel context.CancelFunc

	// mu guards closed. bg counts the goroutines the gateway starts (cold
	// starts, runner watchers, route refreshes); closed stops new ones, so
	// Shutdown's bg.Wait cannot race with bg.Add.
	mu     sync.Mutex
	closed bool
	bg     sync.WaitGroup
}

// New returns a Gateway for cfg, or an error wrapping ErrInvalidConfig.
func New(cfg Config) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base, cancel := context.WithCancel(context.Background())
	g := &Gateway{
		cfg:        cfg,
		domain:     strings.ToLower(cfg.Domain),
		log:        cfg.Logger,
		routes:     newRouteCache(cfg.Routes, cfg.ColdStartTimeout),
		runners:    newRunnerTable(),
		starts:     map[string]*start{},
		watchAfter: watchAfter,
		conns:      newIPLimit(cfg.MaxConnsPerIP),
		base:       base,
		cancel:     cancel,
	}
	if cfg.Domains != nil {
		g.domains = newDomainCache(cfg.Domains, cfg.ColdStartTimeout)
	}
	if cfg.OwnerCounts != nil {
		g.owners.Share(cfg.OwnerCounts, cmp.Or(cfg.OwnerSync, defaultOwnerSync), cfg.Logger)
		g.bg.Add(1)
		go func() {
			defer g.bg.Done()
			g.owners.Run(base)
		}()
	}
	g.api = g.apiClient()
	g.server = &fasthttp.Server{
		Handler:            g.handle,
		ErrorHandler:       g.handleError,
		Logger:             fasthttpLogger{cfg.Logger},
		MaxRequestBodySize: cfg.MaxRequestBodySize,
		ReadTimeout:        cfg.ReadTimeout,
		WriteTimeout:       cfg.WriteTimeout,
		IdleTimeout:        cfg.IdleTimeout,
		Concurrency:        cfg.Concurrency,
		// Shrinking buffers between requests trades CPU on the hot path
		// for memory; the gateway wants the CPU.
		ReduceMemoryUsage: false,
		// Apps' own Server and Content-Type headers pass through as sent.
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		// Keep-alive connections close once their request is answered
		// during Shutdown, instead of holding it up until IdleTimeout.
		CloseOnShutdown: true,
		// The body goes to the app as it came; parsing a multipart upload
		// here would only cost time and, for large files, disk.
		DisablePreParseMultipartForm: true,
	}
	return g, nil
}

// Serve serves HTTP/1.1 on l until Shutdown; it then returns nil. l must
// yield plain connections (TLS, if any, ends in front of the gateway).
// Connections from one IP address beyond Config.MaxConnsPerIP (counted
// across every listener served) are answered 429 and closed.
func (g *Gateway) Serve(l net.Listener) error {
	return g.server.Serve(&edgeListener{Listener: l, limit: g.conns})
}

// Shutdown stops accepting connections, waits for requests in flight to
// finish (streamed responses included), closes WebSocket sessions, then
// releases every runner the gateway claimed and waits for its background
// work. If ctx ends first it returns ctx's error; streamed responses still
// running are then cut off, and other requests in flight finish on their
// own.
func (g *Gateway) Shutdown(ctx context.Context) error {
	err := g.server.ShutdownWithContext(ctx)
	g.live.closeAll()
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.cancel()
	for _, e := range g.runners.close() {
		e.retire()
	}
	g.api.CloseIdleConnections()

	done := make(chan struct{})
	go func() {
		g.bg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}

// Invalidate tells the gateway that slug's route changed. The next request
// for slug reads the route again, so a redeploy serves the new version at
// once. In the background the gateway re-reads the route and retires the
// runner that no longer serves it (the app's only runner when the app is
// gone); requests in flight on that runner complete before it is released.
//
// Given DomainChanged(host) instead, it forgets which app custom domain host
// serves.
func (g *Gateway) Invalidate(slug string) {
	if host, ok := strings.CutPrefix(slug, domainChangedPrefix); ok {
		if g.domains != nil {
			g.domains.invalidate(host)
		}
		return
	}
	slug = strings.ToLower(slug)
	gen := g.routes.invalidate(slug)
	if !g.enter() {
		return
	}
	go func() {
		defer g.bg.Done()
		g.refresh(slug, gen)
	}()
}

// enter counts one background goroutine in, unless the gateway is shut
// down; the caller must call g.bg.Done when it returns true.
func (g *Gateway) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.bg.Add(1)
	return true
}

// handle routes one request by its Host header.
func (g *Gateway) handle(ctx *fasthttp.RequestCtx) {
	host := string(ctx.Host())
	switch kind, slug := parseHost(host, g.domain); kind {
	case hostAPI:
		g.serveAPI(ctx)
	case hostApp:
		if strings.HasPrefix(slug, dataViewerPrefix) {
			// A user's data viewer is served by the platform API.
			g.serveAPI(ctx)
			return
		}
		g.serveApp(ctx, slug)
	default:
		if slug := g.customDomain(ctx, host); slug != "" {
			g.serveApp(ctx, slug)
		}
	}
}

// customDomain returns the slug of the app custom domain host serves, or
// "" once it has answered the request itself (no such domain, or the
// look-up failed). No custom domain is under the platform's own domain
// (the control plane refuses those), so such hosts are not looked up.
func (g *Gateway) customDomain(ctx *fasthttp.RequestCtx, host string) string {
	h := normalHost(host)
	if g.domains == nil || h == "" || strings.HasSuffix(h, "."+g.domain) {
		g.fail(ctx, host, errUnknownHost)
		return ""
	}
	slug, err := g.domains.slug(g.base, h)
	switch {
	case err != nil:
		g.fail(ctx, host, err)
	case slug == "":
		g.fail(ctx, host, errUnknownHost)
	}
	return slug
}

// serveApp proxies one request to app slug's runner, cold starting it if
// needed.
func (g *Gateway) serveApp(ctx *fasthttp.RequestCtx, slug string) {
	route, err := g.routes.get(g.base, slug)
	if err != nil {
		g.fail(ctx, slug, err)
		return
	}
	var id [requestIDLen]byte
	setRequestID(&ctx.Request.Header, &id)
	if g.cfg.Recorder != nil {
		defer g.record(ctx, route.GetAppId(), id[:])
	}
	if n := route.GetOwnerRequestsPerMinute(); n > 0 {
		// Only then: most requests, of owners with no limit, read no clock.
		if err := g.owners.Take(route.GetOwnerId(), n, time.Now()); err != nil {
			g.fail(ctx, slug, err)
			return
		}
	}
	e, wait, err := g.runnerFor(slug, route, sendsAhead(ctx))
	if err != nil {
		g.fail(ctx, slug, err)
		return
	}
	if wait == nil {
		e.runner.Touch()
	}
	// Both take over the hold on e: a streamed body or a WebSocket session
	// keeps the runner in use after this handler returns.
	if isWebSocket(&ctx.Request.Header) {
		g.serveWebSocket(ctx, slug, e)
		return
	}
	err = g.proxyApp(ctx, e, wait)
	if wait != nil && errors.Is(err, errRunnerGone) {
		// The runner it was sent ahead to stopped before the request could
		// be counted in (a crash right after its start): like any other
		// request, it gets one more runner, the app having answered
		// nothing.
		if e, _, err = g.runnerFor(slug, route, false); err == nil {
			e.runner.Touch()
			err = g.proxyApp(ctx, e, nil)
		}
	}
	if err != nil {
		var sf startFailed
		if errors.As(err, &sf) {
			err = sf.err
		} else if e != nil {
			err = fmt.Errorf("%w: %s at %s: %w", errUpstream, slug, e.client.Addr, err)
		}
		g.fail(ctx, slug, err)
		return
	}
	addOpenGraph(ctx, route)
}

// sendsAhead reports whether a request for an app that is cold starting
// may be sent to its runner before the runner serves: one that can be
// repeated and has no body. Its answer is read only once the start
// succeeded; if the start fails, the app never saw it.
func sendsAhead(ctx *fasthttp.RequestCtx) bool {
	h := &ctx.Request.Header
	// No body: no Content-Length (-2) or zero; -1 is chunked.
	n := h.ContentLength()
	return (h.IsGet() || h.IsHead() || h.IsOptions()) && (n == 0 || n == -2) && !isWebSocket(h)
}

// handleError answers a request fasthttp could not read.
func (g *Gateway) handleError(ctx *fasthttp.RequestCtx, err error) {
	g.fail(ctx, string(ctx.Host()), fmt.Errorf("%w: %w", errBadRequest, err))
}

// fail answers ctx with the error page for err and logs err for the
// operator.
func (g *Gateway) fail(ctx *fasthttp.RequestCtx, name string, err error) {
	a := classify(err, name, &g.cfg)
	level := slog.LevelInfo
	switch {
	case a.status >= 500:
		level = slog.LevelWarn
	case a.status == fasthttp.StatusTooManyRequests:
		level = slog.LevelDebug // as many as the requests refused
	}
	g.log.Log(context.Background(), level, "request failed", "host", string(ctx.Host()), "path", string(ctx.Path()),
		"status", a.status, "request_id", string(ctx.Request.Header.Peek(HeaderRequestID)), "err", err)
	writeError(ctx, a)
}

// fasthttpLogger routes fasthttp's own messages to the gateway's logger.
type fasthttpLogger struct{ l *slog.Logger }

// Printf logs one fasthttp message as a warning.
func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Warn(fmt.Sprintf(format, args...), "component", "fasthttp")
}
