package gateway

import (
	"bufio"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// streamBody makes ctx's response body stream the rest of the runner's
// response from br: chunked to the client when the runner did not say the
// length (each piece flushed as it arrives, so server-sent events are not
// held back), with the runner's Content-Length otherwise. fasthttp writes
// it after the handler returns and then closes it, which ends the
// exchange: done(reuse) returns the runner connection to the pool (or
// closes it) and e is released.
//
// While the body streams the client is watched, so a client that hangs up
// during a long quiet stretch (an event stream waiting for its next
// event) closes the runner connection at once, and the app sees the
// disconnect; a failed write to the client does the same in any case.
func (g *Gateway) streamBody(ctx *fasthttp.RequestCtx, e *runnerEntry, client *edgeConn,
	conn net.Conn, br *bufio.Reader, size int, done func(reuse bool)) {
	up := fasthttp.AcquireResponse()
	up.StreamBody = true
	up.Header.SetContentLength(size) // frames the stream: -1 chunked, -2 until close
	_ = up.ReadBody(br, 0)           // in stream mode this only sets the stream up
	b := &appBody{
		g:      g,
		e:      e,
		up:     up,
		conn:   conn,
		toUser: ctx.Conn(),
		client: client,
		done:   done,
	}
	if size < 0 {
		size = -1
	}
	ctx.Response.ImmediateHeaderFlush = true
	ctx.Response.SetBodyStream(b, size)
	if client != nil {
		client.watch(b.abort)
	}
	if !g.live.add(b) {
		b.abort() // shutting down: the stream ends at once
	}
}

// appBody is the streamed body of one app response. fasthttp calls Read
// and then CloseWithError on the connection's serving goroutine; abort may
// come from any goroutine.
type appBody struct {
	g      *Gateway
	e      *runnerEntry
	up     *fasthttp.Response // holds the stream reading the runner
	conn   net.Conn           // to the runner
	toUser net.Conn           // to the client, for write deadlines
	client *edgeConn          // nil when the client cannot be watched
	done   func(reuse bool)

	eof     bool        // the runner's body was read to its end
	err     error       // why reading the runner's body failed
	aborted atomic.Bool // abort closed the runner connection
}

// Read returns the next piece of the body as soon as the runner sends it.
// The runner has UpstreamTimeout for each piece, and the client
// WriteTimeout to take it, so a stream may last as long as both keep up.
func (b *appBody) Read(p []byte) (int, error) {
	now := time.Now()
	_ = b.conn.SetReadDeadline(now.Add(b.g.cfg.UpstreamTimeout))
	n, err := b.up.BodyStream().Read(p)
	if n > 0 && b.toUser != nil {
		_ = b.toUser.SetWriteDeadline(time.Now().Add(b.g.cfg.WriteTimeout))
	}
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil && b.aborted.Load():
		// The client left or the gateway is stopping: the body ends short,
		// which fasthttp does not log as a failure of its own.
		err = io.ErrUnexpectedEOF
	case err != nil && b.err == nil:
		b.err = err
	}
	return n, err
}

// CloseWithError ends the exchange; werr is why fasthttp stopped writing
// (nil when the body was sent). fasthttp calls it exactly once.
func (b *appBody) CloseWithError(werr error) error {
	gone := false
	if b.client != nil {
		gone = b.client.unwatch()
	}
	b.g.live.remove(b)
	_ = b.up.CloseBodyStream()
	fasthttp.ReleaseResponse(b.up)
	b.done(b.eof && !gone)
	b.e.release()
	if b.err != nil && werr == nil && !gone {
		// The status line is long sent: the client sees the body cut off
		// (no final chunk), and only the operator can be told why.
		b.g.log.Warn("app response cut short", "app", b.e.slug, "runner", b.e.runner.Addr(), "err", b.err)
	}
	return nil
}

// abort ends the stream early: the runner connection closes, so the
// pending Read fails and fasthttp closes the body.
func (b *appBody) abort() {
	b.aborted.Store(true)
	_ = b.conn.Close()
}
