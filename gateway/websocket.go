package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// maxUpgradeHead bounds the runner's answer head to a WebSocket handshake.
const maxUpgradeHead = 64 << 10

// errBadUpgradeHead is a runner answer to a handshake that is not HTTP/1.1.
var errBadUpgradeHead = errors.New("malformed response head")

// isWebSocket reports whether the request asks to switch to the WebSocket
// protocol (RFC 6455 section 4.1): a GET with "Connection: Upgrade" and
// "Upgrade: websocket", in any case and among other tokens.
func isWebSocket(h *fasthttp.RequestHeader) bool {
	if !h.IsGet() || !h.ConnectionUpgrade() {
		return false
	}
	for tok := range bytes.SplitSeq(h.Peek(fasthttp.HeaderUpgrade), []byte(",")) {
		if bytes.EqualFold(bytes.TrimSpace(tok), []byte("websocket")) {
			return true
		}
	}
	return false
}

// serveWebSocket proxies a WebSocket handshake to e's runner on a
// connection of its own and, once the app accepts (101), splices the
// client and runner connections together until either side closes.
// fasthttp has no WebSocket proxy; the handler hijacks the client
// connection, so fasthttp stops reading it as HTTP. An app that refuses
// the handshake answers with a plain response, passed on as usual.
//
// serveWebSocket takes over the caller's hold on e: the session counts as
// a request in flight on the runner until it ends, so a runner retired
// meanwhile (a redeploy) is released only after its sessions close.
func (g *Gateway) serveWebSocket(ctx *fasthttp.RequestCtx, slug string, e *runnerEntry) {
	up, br, head, err := g.upgrade(ctx, e)
	if err != nil {
		e.release()
		g.fail(ctx, slug, fmt.Errorf("%w: %s at %s: websocket: %w", errUpstream, slug, e.runner.Addr(), err))
		return
	}
	if up == nil { // refused: the answer is in ctx
		e.release()
		return
	}
	if !g.enter() {
		up.Close()
		e.release()
		g.fail(ctx, slug, errShuttingDown)
		return
	}
	s := &wsSession{g: g, e: e, up: up, br: br, head: head}
	if !g.live.add(s) {
		s.end()
		g.fail(ctx, slug, errShuttingDown)
		return
	}
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(s.run)
	// fasthttp skips the hijack handler if the connection fails first, but
	// it always closes the connection then: end the session there too.
	if c, ok := ctx.Conn().(*edgeConn); ok {
		c.setOnClose(s.end)
	}
}

// upgrade dials e's runner, sends it the handshake in ctx and reads the
// answer. On 101 it returns the runner connection, a reader holding any
// bytes the app sent after the head, and the head to send the client
// verbatim. On any other answer it puts that response in ctx and returns
// a nil connection.
func (g *Gateway) upgrade(ctx *fasthttp.RequestCtx, e *runnerEntry) (net.Conn, *bufio.Reader, []byte, error) {
	upgrade := string(ctx.Request.Header.Peek(fasthttp.HeaderUpgrade))
	prepareRequest(ctx)
	// The handshake is the one request whose Upgrade and Connection
	// headers are for the next hop.
	ctx.Request.Header.Set(fasthttp.HeaderConnection, "Upgrade")
	ctx.Request.Header.Set(fasthttp.HeaderUpgrade, upgrade)
	ctx.Request.URI().DisablePathNormalizing = true
	ctx.Request.UseHostHeader = true

	conn, err := g.dialUpstream(e.runner.Addr())
	if err != nil {
		return nil, nil, nil, err
	}
	if err := conn.SetDeadline(time.Now().Add(g.cfg.UpstreamTimeout)); err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	bw := bufio.NewWriter(conn)
	if err := ctx.Request.Write(bw); err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	if err := bw.Flush(); err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	br := bufio.NewReader(conn)
	head, code, err := readRawHead(br)
	if err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	if code == fasthttp.StatusSwitchingProtocols {
		if err := conn.SetDeadline(time.Time{}); err != nil {
			conn.Close()
			return nil, nil, nil, err
		}
		return conn, br, head, nil
	}
	defer conn.Close()
	err = ctx.Response.Read(bufio.NewReader(io.MultiReader(bytes.NewReader(head), br)))
	if err != nil {
		return nil, nil, nil, err
	}
	stripResponse(&ctx.Response.Header)
	return nil, nil, nil, nil
}

// dialUpstream opens a connection of its own to a runner.
func (g *Gateway) dialUpstream(addr string) (net.Conn, error) {
	if g.dialRunner != nil {
		return g.dialRunner(addr)
	}
	return dialRunner(addr, g.cfg.UpstreamTimeout)
}

// readRawHead reads a response head, through the blank line, and returns
// it as sent with its status code.
func readRawHead(br *bufio.Reader) (head []byte, code int, err error) {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				err = errBadUpgradeHead
			}
			return nil, 0, err
		}
		head = append(head, line...)
		if len(head) > maxUpgradeHead {
			return nil, 0, errBadUpgradeHead
		}
		if len(head) > len(line) && (string(line) == "\r\n" || string(line) == "\n") { // the blank line
			break
		}
	}
	// "HTTP/1.1 101 Switching Protocols"
	_, rest, ok := bytes.Cut(head, []byte(" "))
	if !ok || len(rest) < 3 || !bytes.HasPrefix(head, []byte("HTTP/1.")) {
		return nil, 0, errBadUpgradeHead
	}
	for _, c := range rest[:3] {
		if c < '0' || c > '9' {
			return nil, 0, errBadUpgradeHead
		}
		code = code*10 + int(c-'0')
	}
	return head, code, nil
}

// wsSession is one proxied WebSocket connection. It is counted in the
// gateway's background work and in its live set until end.
type wsSession struct {
	g    *Gateway
	e    *runnerEntry
	up   net.Conn      // to the runner
	br   *bufio.Reader // reads up, starting with bytes after the 101 head
	head []byte        // the runner's 101 head, for the client

	// mu guards client and aborted: abort may come from Shutdown while
	// the hijack handler starts.
	mu      sync.Mutex
	client  net.Conn
	aborted bool
	endOnce sync.Once
}

// run is the hijack handler: it sends the client the app's 101 and copies
// bytes both ways until either side closes, then ends the session.
func (s *wsSession) run(c net.Conn) {
	defer s.end()
	s.mu.Lock()
	if s.aborted {
		s.mu.Unlock()
		return
	}
	s.client = c
	s.mu.Unlock()
	if _, err := c.Write(s.head); err != nil {
		return
	}
	toApp := make(chan struct{})
	go func() {
		defer close(toApp)
		_, _ = io.Copy(s.up, c)
		s.abort()
	}()
	_, _ = io.Copy(c, s.br)
	s.abort()
	<-toApp
}

// abort stops both copies: closing the hijacked connection is left to
// fasthttp, so deadlines in the past wake its reads and writes instead.
func (s *wsSession) abort() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.aborted = true
	_ = s.up.Close()
	if s.client != nil {
		_ = s.client.SetDeadline(aLongTimeAgo)
	}
}

// end releases what the session holds; it runs once, from the hijack
// handler or, if that never started, when the client connection closes.
func (s *wsSession) end() {
	s.endOnce.Do(func() {
		_ = s.up.Close()
		s.g.live.remove(s)
		s.e.release()
		s.g.bg.Done()
	})
}
