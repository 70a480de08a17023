package gateway

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/gofastapi/gofastapi/gateway/metrics"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// benchGateway returns a Gateway over pool whose runners are reached
// through dial, and the route source it reads. It is not served.
func benchGateway(b *testing.B, pool Pool, dial fasthttp.DialFunc, edits ...func(*Config)) (*Gateway, *mapRoutes) {
	routes := &mapRoutes{}
	cfg := Config{
		Domain:             testDomain,
		API:                func() (net.Conn, error) { return nil, net.ErrClosed },
		Routes:             routes,
		Pool:               pool,
		MaxRequestBodySize: 1 << 20,
		ReadTimeout:        time.Minute,
		WriteTimeout:       time.Minute,
		IdleTimeout:        time.Minute,
		UpstreamTimeout:    time.Minute,
		ColdStartTimeout:   time.Minute,
		Concurrency:        4096,
		Logger:             slog.New(slog.DiscardHandler),
	}
	for _, edit := range edits {
		edit(&cfg)
	}
	g, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	g.dialRunner = dial
	b.Cleanup(func() {
		if err := g.Shutdown(context.Background()); err != nil {
			b.Error(err)
		}
	})
	return g, routes
}

// BenchmarkRoutingChain measures a warm request through the whole gateway
// (fasthttp server, host parsing, route cache, runner table, proxy) to a
// fast in-process upstream, against calling that upstream directly; the
// difference is the gateway's cost. Everything runs over in-memory pipes.
// "gateway" is the common small JSON answer, which the proxy buffers;
// "gateway-chunked" is the same body sent chunked, which it streams.
func BenchmarkRoutingChain(b *testing.B) {
	dial := newUpstream(b, func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		if bytes.Equal(ctx.QueryArgs().Peek("chunked"), []byte("1")) {
			ctx.SetBodyStream(strings.NewReader(`{"ok":true}`), -1)
			return
		}
		ctx.SetBodyString(`{"ok":true}`)
	})
	const url = "http://demo.example.test/items/42?q=x"

	b.Run("direct", func(b *testing.B) {
		run(b, &fasthttp.HostClient{Addr: "runner", Dial: dial, MaxConns: 1024}, url)
	})
	b.Run("gateway", func(b *testing.B) {
		run(b, servedGateway(b, dial, url), url)
	})
	b.Run("gateway-chunked", func(b *testing.B) {
		run(b, servedGateway(b, dial, url), url+"&chunked=1")
	})
	// The same as "gateway" with per-app metrics recorded (the in-memory
	// aggregate and the operators' Prometheus histogram): the difference
	// is what recording costs a request.
	b.Run("gateway+metrics", func(b *testing.B) {
		run(b, servedGateway(b, dial, url, withMetrics(b)), url)
	})
}

// withMetrics gives the gateway a metrics.Recorder that never flushes
// during the benchmark.
func withMetrics(b *testing.B) func(*Config) {
	rec, err := metrics.New(metrics.Config{Sink: discardSink{}, FlushInterval: time.Hour, ProbeInterval: time.Hour,
		ProbeTimeout: time.Second, Registerer: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	return func(c *Config) { c.Recorder = rec }
}

// discardSink drops what a metrics.Recorder flushes.
type discardSink struct{}

func (discardSink) WriteWindows(context.Context, []*v1.MetricsWindow) error { return nil }
func (discardSink) WriteErrors(context.Context, []*v1.RequestError) error   { return nil }
func (discardSink) WriteHealth(context.Context, []*v1.HealthReport) error   { return nil }

// servedGateway serves a benchGateway whose app "demo" runs on dial, and
// returns a client of it, warmed up by one request for url.
func servedGateway(b *testing.B, dial fasthttp.DialFunc, url string, edits ...func(*Config)) *fasthttp.HostClient {
	g, routes := benchGateway(b, &fakePool{addr: "runner"}, dial, edits...)
	routes.set("demo", "app1", "v1")
	ln := fasthttputil.NewInmemoryListener()
	served := make(chan error, 1)
	go func() { served <- g.Serve(ln) }()
	b.Cleanup(func() {
		_ = g.Shutdown(context.Background())
		<-served
	})
	client := &fasthttp.HostClient{Addr: "gateway", Dial: func(string) (net.Conn, error) { return ln.Dial() }, MaxConns: 1024}
	if code, _, err := client.Get(nil, url); err != nil || code != 200 { // cold start outside the timing
		b.Fatalf("warm-up: %d %v", code, err)
	}
	return client
}

func run(b *testing.B, c *fasthttp.HostClient, url string) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(url)
		for pb.Next() {
			if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				b.Errorf("%d %v", resp.StatusCode(), err)
				return
			}
		}
	})
	b.StopTimer()
	c.CloseIdleConnections()
}

// BenchmarkColdStartPath measures the gateway's share of a cold start:
// route look-up, the shared start, Claim from a pool that answers at once,
// installing and watching the runner. Each iteration's runner then stops,
// so the next iteration starts cold again.
func BenchmarkColdStartPath(b *testing.B) {
	pool := &fakePool{addr: "runner"}
	g, routes := benchGateway(b, pool, nil)
	routes.set("demo", "app1", "v1")
	b.ReportAllocs()
	for b.Loop() {
		route, err := g.routes.get(g.base, "demo")
		if err != nil {
			b.Fatal(err)
		}
		e, _, err := g.runnerFor("demo", route, false)
		if err != nil {
			b.Fatal(err)
		}
		e.release()
		close(e.runner.(*fakeRunner).done)
	}
	if n := pool.claimCount(); n < b.N {
		b.Fatalf("%d claims for %d cold starts", n, b.N)
	}
}
