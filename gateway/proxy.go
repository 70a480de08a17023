package gateway

import (
	"bytes"
	"fmt"
	"net"
	"time"

	"github.com/gofastapi/gofastapi/proto/appaddr"

	"github.com/valyala/fasthttp"
)

const (
	// runnerMaxConns caps the connections to one runner. A runner is one
	// Python process; beyond a few hundred connections it only queues, and
	// requests over the cap wait up to UpstreamTimeout for a free one.
	runnerMaxConns = 256
	// runnerReadBuffer is the largest response head a runner may send
	// (many cookies make large heads).
	runnerReadBuffer = 16 << 10
	// runnerIdleConn closes pooled connections to a runner before uvicorn
	// (keep-alive timeout 5 s) does, so a request is not written onto a
	// connection the runner is closing; only idempotent requests would be
	// retried after that.
	runnerIdleConn = 2 * time.Second
	// apiMaxConns caps the connections to the platform API. A streaming
	// RPC holds one for its whole duration.
	apiMaxConns = 1024
)

// hopByHop are the headers that describe one connection, not the message;
// a proxy must not forward them (RFC 9110 section 7.6.1).
var hopByHop = []string{
	fasthttp.HeaderConnection,
	"Proxy-Connection",
	fasthttp.HeaderKeepAlive,
	fasthttp.HeaderProxyAuthenticate,
	fasthttp.HeaderProxyAuthorization,
	fasthttp.HeaderTE,
	fasthttp.HeaderTrailer,
	fasthttp.HeaderTransferEncoding,
	fasthttp.HeaderUpgrade,
}

// runnerClient returns the connection pool for the runner at addr. The
// gateway makes one per runner and reuses it for every request to it. The
// proxy takes connections from it and does the exchange itself (see
// exchange), so the timeouts are set there.
func (g *Gateway) runnerClient(addr string) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                addr,
		Dial:                g.runnerDial(),
		MaxConns:            runnerMaxConns,
		MaxConnWaitTimeout:  g.cfg.UpstreamTimeout,
		MaxIdleConnDuration: runnerIdleConn,
		ReadBufferSize:      runnerReadBuffer,
	}
}

// runnerDial is how runnerClient connects: dialRunner if set, else TCP
// (fasthttp's default dial) with raw reads and writes (see rawIO).
func (g *Gateway) runnerDial() fasthttp.DialFunc {
	if g.dialRunner != nil {
		return g.dialRunner
	}
	return func(addr string) (net.Conn, error) { return dialRunner(addr, runnerDialTimeout) }
}

// runnerDialTimeout bounds connecting to a runner for a pooled connection,
// as fasthttp's own Dial does.
const runnerDialTimeout = 3 * time.Second

// dialRunner connects to a runner at addr (see appaddr): a runner on this
// machine over its app's Unix socket, which only the gateway and the app's
// own user may open; one in a pod over TCP, through fasthttp's resolver.
func dialRunner(addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	var err error
	if network, address := appaddr.Network(addr); network == "unix" {
		c, err = net.DialTimeout(network, address, timeout)
	} else {
		c, err = fasthttp.DialTimeout(addr, timeout)
	}
	if err != nil {
		return nil, err
	}
	return rawIO(c), nil
}

// apiClient returns the connection pool to the platform API. Its responses
// are streamed, and it has no read timeout because a server-streaming RPC
// sends events for as long as it runs; the API bounds its own handlers.
func (g *Gateway) apiClient() *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                     "platform-api",
		Dial:                     func(string) (net.Conn, error) { return g.cfg.API() },
		NoDefaultUserAgentHeader: true,
		MaxConns:                 apiMaxConns,
		MaxConnWaitTimeout:       g.cfg.UpstreamTimeout,
		WriteTimeout:             g.cfg.UpstreamTimeout,
		DisablePathNormalizing:   true,
		StreamResponseBody:       true,
	}
}

// serveAPI forwards the request in ctx to the platform API and streams the
// response back, flushing each piece as it arrives, so the events of a
// server-streaming RPC reach the client as they are sent.
func (g *Gateway) serveAPI(ctx *fasthttp.RequestCtx) {
	prepareRequest(ctx)
	resp := fasthttp.AcquireResponse()
	if err := g.api.Do(&ctx.Request, resp); err != nil {
		fasthttp.ReleaseResponse(resp)
		g.fail(ctx, g.domain, fmt.Errorf("%w: %w", errAPIUpstream, err))
		return
	}
	resp.Header.CopyTo(&ctx.Response.Header)
	stripResponse(&ctx.Response.Header)
	if resp.BodyStream() == nil { // no body: HEAD, 204, 304
		fasthttp.ReleaseResponse(resp)
		return
	}
	size := resp.Header.ContentLength()
	if size < 0 {
		size = -1 // chunked to the client, one chunk per upstream read
	}
	ctx.Response.ImmediateHeaderFlush = true
	// The server reads, writes and finally closes the stream after this
	// handler returns; closing it releases resp and its connection.
	ctx.SetBodyStream(&apiBody{resp: resp}, size)
}

// apiBody is the streamed body of one API response.
type apiBody struct{ resp *fasthttp.Response }

// Read reads the upstream body as it arrives.
func (b *apiBody) Read(p []byte) (int, error) { return b.resp.BodyStream().Read(p) }

// Close releases the upstream response; fasthttp calls it once.
func (b *apiBody) Close() error {
	err := b.resp.CloseBodyStream()
	fasthttp.ReleaseResponse(b.resp)
	return err
}

// prepareRequest makes the request in ctx ready to forward: it drops
// hop-by-hop headers (including those the Connection header names) and
// Expect, and sets X-Forwarded-For (appending the client's address to any
// list it came with), X-Forwarded-Proto (the scheme the client used) and
// X-Forwarded-Host (the host the request was routed by, as the client
// wrote it).
//
// Only the last X-Forwarded-For entry is the gateway's word; the ones
// before it are the client's claim. uvicorn reads the list that way (the
// last address it does not trust as a proxy), and so must apps that read
// the header themselves.
func prepareRequest(ctx *fasthttp.RequestCtx) {
	h := &ctx.Request.Header
	if conn := h.Peek(fasthttp.HeaderConnection); len(conn) > 0 {
		for _, name := range connectionTokens(conn) {
			h.Del(name)
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
	// The gateway has already answered any "100-continue" and read the
	// whole body; the upstream must not be asked to.
	h.Del(fasthttp.HeaderExpect)
	// The app sees the host the request was routed by: the Host header as
	// the client sent it (case and port kept), unless the request line
	// named another (absolute form), which wins (RFC 9112 section 3.2.2).
	if !bytes.EqualFold(h.Host(), ctx.Host()) {
		h.SetHostBytes(ctx.Host())
	}
	ip := ctx.RemoteIP().String()
	if prior := h.Peek(fasthttp.HeaderXForwardedFor); len(prior) > 0 {
		ip = string(prior) + ", " + ip
	}
	h.Set(fasthttp.HeaderXForwardedFor, ip)
	if ctx.IsTLS() {
		h.Set(fasthttp.HeaderXForwardedProto, "https")
	} else {
		h.Set(fasthttp.HeaderXForwardedProto, "http")
	}
	h.SetBytesV(fasthttp.HeaderXForwardedHost, h.Host())
	// Forward a body without Content-Type as it came, not as
	// application/octet-stream.
	h.SetNoDefaultContentType(true)
}

// stripResponse drops the hop-by-hop headers of an upstream response; the
// gateway decides its own connection's fate.
func stripResponse(h *fasthttp.ResponseHeader) {
	if conn := h.Peek(fasthttp.HeaderConnection); len(conn) > 0 {
		for _, name := range connectionTokens(conn) {
			h.Del(name)
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
	h.ResetConnectionClose()
}

// connectionTokens returns copies of the header names a Connection header
// lists, except "close" and "keep-alive", which are not header names.
func connectionTokens(v []byte) []string {
	var names []string
	for tok := range bytes.SplitSeq(v, []byte(",")) {
		tok = bytes.TrimSpace(tok)
		if len(tok) == 0 || bytes.EqualFold(tok, []byte("close")) || bytes.EqualFold(tok, []byte("keep-alive")) {
			continue
		}
		names = append(names, string(tok))
	}
	return names
}
