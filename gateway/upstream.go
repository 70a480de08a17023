package gateway

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

const (
	// maxBufferedBody is the largest response body, of known length, that
	// the gateway reads whole before answering; longer ones, and those of
	// unknown length (chunked), are streamed. Buffering keeps the common
	// small response on fasthttp's cheapest path (one write, no per-read
	// bookkeeping); streaming keeps memory flat and lets events through as
	// the app produces them.
	maxBufferedBody = 64 << 10
	// watchAfter is how long the gateway waits for a response head before
	// it starts watching the client for a hang-up (see edgeConn). Fast
	// requests never pay for a watch; a slow one is cancelled upstream
	// within about this long after its client leaves. Streamed responses
	// are watched from their first byte.
	watchAfter = 50 * time.Millisecond
	// maxUpstreamAttempts bounds tries of one request: a pooled connection
	// the runner closed while it sat idle fails before any answer, and the
	// request is retried once on another.
	maxUpstreamAttempts = 2
)

// errUnaskedSwitch is a runner answering 101 to a request that did not ask
// to switch protocols.
var errUnaskedSwitch = errors.New("switched protocols unasked")

// errNoLane is a runner answering a lane frame in plain HTTP: it does not
// speak the lane (a runner of an older release, or another HTTP server),
// and its parser refused the frame before any app saw it.
var errNoLane = errors.New("runner does not speak the gateway's lane")

// proxyApp forwards the request in ctx to e's runner and puts the
// response in ctx: read whole when it is small and of known length,
// otherwise streamed to the client piece by piece as the runner sends it.
// The request keeps its method, raw path and query, headers and body.
//
// proxyApp takes over the caller's hold on e (see runnerEntry.acquire): it
// releases it once the runner is no longer needed, which for a streamed
// response is after its last byte (or the client leaving).
//
// With wait (see runnerFor), e's runner is still starting and the caller
// has no hold on it yet: the request is sent first, then wait is called,
// and the answer is read only if it succeeds. If it fails, proxyApp
// returns its error as a startFailed.
func (g *Gateway) proxyApp(ctx *fasthttp.RequestCtx, e *runnerEntry, wait func() error) error {
	prepareRequest(ctx)
	// Forward the path as the client wrote it (a%2Fb stays a%2Fb) and the
	// Host header as the client sent it, port and case included.
	ctx.Request.URI().DisablePathNormalizing = true
	ctx.Request.UseHostHeader = true
	client, _ := ctx.Conn().(*edgeConn)
	for attempt := 1; ; attempt++ {
		streamed, retry, err := g.exchange(ctx, e, client, wait)
		if wait != nil {
			if errors.As(err, new(startFailed)) {
				return err
			}
			wait = nil
		}
		if errors.Is(err, errNoLane) {
			// Not an attempt: the request goes again, in HTTP.
			attempt--
			continue
		}
		if !streamed {
			if err == nil || !retry || attempt == maxUpstreamAttempts {
				e.release()
				return err
			}
			continue
		}
		return nil
	}
}

// startFailed is the error of the start a request was sent ahead of (see
// proxyApp): the app never answered it.
type startFailed struct{ err error }

func (s startFailed) Error() string { return s.err.Error() }
func (s startFailed) Unwrap() error { return s.err }

// exchange is one attempt of proxyApp on one pooled connection. streamed
// reports that the response body streams and will release e when done;
// retry, that err happened before the runner can have seen the request.
// With wait, the request is sent ahead of the runner's start: wait is
// called once it is written, and its error ends the attempt as a
// startFailed.
func (g *Gateway) exchange(ctx *fasthttp.RequestCtx, e *runnerEntry, client *edgeConn, wait func() error) (streamed, retry bool, err error) {
	hc := e.client
	// Read once: the answer is read as the request was written, whatever
	// another request learns of the runner meanwhile.
	lane := !e.httpOnly.Load()
	timeout := g.cfg.UpstreamTimeout
	start := time.Now()
	cc, err := hc.AcquireConn(0, false)
	// A connection that has served before may have been closed by the
	// runner while idle; a new one failing means the runner is down.
	reused := false
	if err == nil {
		reused = !cc.LastUseTime().IsZero()
		err = writeRequest(ctx, hc, cc.Conn(), start.Add(timeout), lane)
	}
	if wait != nil {
		// Sent ahead: the answer comes once the app serves, and only if
		// its start succeeded.
		if werr := wait(); werr != nil {
			err = startFailed{werr}
		} else {
			e.runner.Touch()
			start = time.Now()
		}
	}
	if err != nil {
		if cc != nil {
			hc.CloseConn(cc)
		}
		switch _, failed := err.(startFailed); {
		case wait != nil:
			// A request that did not go out ahead may be repeated (see
			// sendsAhead) once its runner serves; one whose start failed
			// may not.
			return false, !failed, err
		case cc == nil:
			return false, false, err
		default:
			// A write fails only if the runner stopped reading: it cannot
			// have received the whole request, so any method may be
			// retried.
			return false, reused && !isTimeout(err), err
		}
	}

	conn := cc.Conn()
	br := hc.AcquireReader(conn)
	gone, err := awaitHead(conn, br, client, g.watchAfter, start.Add(timeout))
	if err == nil && lane {
		err = readLaneAnswer(br)
		if errors.Is(err, errNoLane) {
			if !e.httpOnly.Swap(true) {
				g.log.Info("runner does not speak the lane: HTTP/1.1 from now on", "app", e.slug, "runner", e.runner.Addr())
			}
			hc.ReleaseReader(br)
			hc.CloseConn(cc)
			return false, true, err
		}
	}
	if err == nil {
		err = readHead(&ctx.Response.Header, br)
	}
	if err == nil && ctx.Response.Header.StatusCode() == fasthttp.StatusSwitchingProtocols {
		// The request did not ask to switch (Upgrade is stripped): the
		// connection now speaks something else and cannot be pooled.
		err = errUnaskedSwitch
	}
	if err != nil || gone {
		hc.ReleaseReader(br)
		hc.CloseConn(cc)
		if gone {
			return false, false, errClientGone
		}
		// The runner closed the connection without a byte of answer: on a
		// reused connection that is the idle-close race, and a request
		// that may be repeated is.
		closed := errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
		retry = reused && closed && isIdempotent(&ctx.Request.Header)
		if closed {
			err = fmt.Errorf("%w: %w", fasthttp.ErrConnectionClosed, err)
		}
		return false, retry, err
	}

	e.answered()
	h := &ctx.Response.Header
	closeConn := h.ConnectionClose()
	stripResponse(h)
	size := h.ContentLength()
	switch {
	case ctx.IsHead() || noBody(h.StatusCode()):
		ctx.Response.SkipBody = true
	case size >= 0 && size <= maxBufferedBody:
		err = ctx.Response.ReadBody(br, 0)
	default:
		g.streamBody(ctx, e, client, conn, br, size, func(reuse bool) {
			hc.ReleaseReader(br)
			if reuse && !closeConn {
				hc.ReleaseConn(cc)
			} else {
				hc.CloseConn(cc)
			}
		})
		return true, false, nil
	}
	hc.ReleaseReader(br)
	if err != nil || closeConn {
		hc.CloseConn(cc)
	} else {
		hc.ReleaseConn(cc)
	}
	return false, false, err
}

// The gateway's lane into a runner (GatewayLane in runner/bootstrap.py):
// each request goes as one frame, laneRequest, the length of the rest (4
// bytes, big-endian), then the request as HTTP/1.1 would carry it; each
// answer is laneAnswer, then the HTTP/1.1 response. The runner serves
// frames with less work than HTTP from anyone (see the README, "the
// gateway's lane").
const (
	laneRequest  = 0x01
	laneAnswer   = 0x02
	laneHeadSize = 5
	// laneKeep is the largest frame buffer kept for reuse.
	laneKeep = 64 << 10
)

// laneFrame collects one request frame, to be written at once.
type laneFrame struct {
	b  []byte
	bw *bufio.Writer // writes into b
}

func (f *laneFrame) Write(p []byte) (int, error) {
	f.b = append(f.b, p...)
	return len(p), nil
}

var laneFrames = sync.Pool{New: func() any {
	f := &laneFrame{b: make([]byte, 0, 1024)}
	f.bw = bufio.NewWriterSize(f, 1024)
	return f
}}

// writeRequest writes ctx's request to a runner's connection: as a lane
// frame with lane, else in HTTP/1.1.
func writeRequest(ctx *fasthttp.RequestCtx, hc *fasthttp.HostClient, conn net.Conn, deadline time.Time, lane bool) error {
	if err := conn.SetWriteDeadline(deadline); err != nil {
		return err
	}
	if lane {
		return writeLane(ctx, conn)
	}
	bw := hc.AcquireWriter(conn)
	err := ctx.Request.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	return err
}

// writeLane writes ctx's request to conn as one lane frame.
func writeLane(ctx *fasthttp.RequestCtx, conn net.Conn) error {
	f := laneFrames.Get().(*laneFrame)
	f.b = append(f.b[:0], laneRequest, 0, 0, 0, 0)
	err := ctx.Request.Write(f.bw)
	if err == nil {
		err = f.bw.Flush()
	}
	if err == nil && uint64(len(f.b)-laneHeadSize) > math.MaxUint32 {
		err = fmt.Errorf("request of %d bytes is too large for a lane frame", len(f.b)-laneHeadSize)
	}
	if err == nil {
		binary.BigEndian.PutUint32(f.b[1:laneHeadSize], uint32(len(f.b)-laneHeadSize))
		_, err = conn.Write(f.b)
	}
	f.bw.Reset(f)
	if cap(f.b) <= laneKeep {
		laneFrames.Put(f)
	}
	return err
}

// readLaneAnswer reads the byte that starts a lane answer from br. A runner
// that answers in HTTP (an 'H') does not speak the lane: errNoLane.
func readLaneAnswer(br *bufio.Reader) error {
	b, err := br.ReadByte()
	switch {
	case err != nil:
		return err
	case b == laneAnswer:
		return nil
	case b == 'H':
		return errNoLane
	}
	return fmt.Errorf("runner answered a lane frame with byte %#x", b)
}

// awaitHead waits until the first byte of the response is in br or the
// deadline passes. If the runner takes longer than watchAfter, it watches
// client meanwhile and, should the client hang up, closes conn so the app
// sees the disconnect; gone then reports that.
func awaitHead(conn net.Conn, br *bufio.Reader, client *edgeConn, watchAfter time.Duration,
	deadline time.Time) (gone bool, err error) {
	if client != nil {
		if err := conn.SetReadDeadline(time.Now().Add(watchAfter)); err != nil {
			return false, err
		}
		if _, err = br.Peek(1); err == nil || !isTimeout(err) {
			if err == nil {
				err = conn.SetReadDeadline(deadline)
			}
			return false, err
		}
		client.watch(func() { _ = conn.Close() })
		defer func() {
			if client.unwatch() {
				gone = true
			}
		}()
	}
	if err := conn.SetReadDeadline(deadline); err != nil {
		return false, err
	}
	_, err = br.Peek(1)
	return false, err
}

// readHead reads a response head into h, skipping interim (1xx) responses
// other than 101.
func readHead(h *fasthttp.ResponseHeader, br *bufio.Reader) error {
	for range 8 {
		if err := h.Read(br); err != nil {
			return err
		}
		if code := h.StatusCode(); code >= 200 || code < 100 || code == fasthttp.StatusSwitchingProtocols {
			return nil
		}
	}
	return errors.New("too many interim responses")
}

// noBody reports whether a response with status code has no body, whatever
// its headers say (RFC 9110 section 6.4.1).
func noBody(code int) bool {
	return code < 200 || code == fasthttp.StatusNoContent || code == fasthttp.StatusNotModified
}

// isIdempotent reports whether repeating the request is harmless (RFC 9110
// section 9.2.2).
func isIdempotent(h *fasthttp.RequestHeader) bool {
	return h.IsGet() || h.IsHead() || h.IsOptions() || h.IsPut() || h.IsDelete() || h.IsTrace()
}
