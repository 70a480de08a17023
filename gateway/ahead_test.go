package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/valyala/fasthttp"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

func TestSendsAhead(t *testing.T) {
	tests := []struct {
		name, raw string
		want      bool
	}{
		{"GET", "GET /items?q=1 HTTP/1.1\r\nHost: demo\r\n\r\n", true},
		{"HEAD", "HEAD / HTTP/1.1\r\nHost: demo\r\n\r\n", true},
		{"CORS preflight", "OPTIONS /items HTTP/1.1\r\nHost: demo\r\nOrigin: http://x\r\nAccess-Control-Request-Method: PUT\r\n\r\n", true},
		{"GET with an empty body", "GET / HTTP/1.1\r\nHost: demo\r\nContent-Length: 0\r\n\r\n", true},
		{"GET with a body", "GET / HTTP/1.1\r\nHost: demo\r\nContent-Length: 2\r\n\r\n{}", false},
		{"GET with a chunked body", "GET / HTTP/1.1\r\nHost: demo\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", false},
		{"POST", "POST /items HTTP/1.1\r\nHost: demo\r\nContent-Length: 2\r\n\r\n{}", false},
		{"POST without a body", "POST /items HTTP/1.1\r\nHost: demo\r\n\r\n", false},
		{"DELETE", "DELETE /items/1 HTTP/1.1\r\nHost: demo\r\n\r\n", false},
		{"WebSocket upgrade", "GET /ws HTTP/1.1\r\nHost: demo\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			if err := ctx.Request.Read(bufio.NewReader(strings.NewReader(tt.raw))); err != nil {
				t.Fatal(err)
			}
			if got := sendsAhead(&ctx); got != tt.want {
				t.Errorf("sendsAhead = %v, want %v", got, tt.want)
			}
		})
	}
}

// aheadPool is a Pool whose runner's "app" is the test itself, on a
// loopback listener: Claim calls picked with its address, then waits for
// the gateway's request to arrive there before it answers, so a Claim
// that returns at all proves the request was sent ahead of the start.
// The start then fails with err, or succeeds and the app answers.
type aheadPool struct {
	ln  net.Listener
	err error

	got    chan *http.Request // the request the app received
	conns  chan net.Conn      // its connection, once Claim returned
	runner *fakeRunner
}

func newAheadPool(t *testing.T, err error) *aheadPool {
	ln, lerr := net.Listen("tcp", "127.0.0.1:0")
	if lerr != nil {
		t.Fatal(lerr)
	}
	t.Cleanup(func() { ln.Close() })
	return &aheadPool{ln: ln, err: err, got: make(chan *http.Request, 1), conns: make(chan net.Conn, 1)}
}

func (p *aheadPool) Claim(ctx context.Context, _ *v1.SpecializeRequest, picked func(string)) (Runner, error) {
	addr := p.ln.Addr().String()
	picked(addr)
	// Only a broken gateway reaches this deadline: it would be waiting
	// for Claim to return before sending.
	deadline := time.Now().Add(10 * time.Second)
	_ = p.ln.(*net.TCPListener).SetDeadline(deadline)
	conn, err := p.ln.Accept()
	if err != nil {
		return nil, fmt.Errorf("the request was not sent ahead of the start: %w", err)
	}
	conn = &laneServerConn{Conn: conn} // a runner's listener
	_ = conn.SetReadDeadline(deadline)
	req, err := http.ReadRequest(bufio.NewReader(conn))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("the request was not sent ahead of the start: %w", err)
	}
	p.got <- req
	p.conns <- conn
	if p.err != nil {
		return nil, p.err
	}
	p.runner = newFakeRunner(addr)
	return p.runner, nil
}

func TestRequestIsSentAheadOfTheStart(t *testing.T) {
	pool := newAheadPool(t, nil)
	h := newHarness(t, pool, options{})
	h.routes.set("demo", "app1", "v1")

	type result struct {
		status int
		body   string
	}
	done := make(chan result, 1)
	go func() {
		status, _, body := h.do(t, http.MethodGet, "http://demo.example.test/items?q=1", "", nil)
		done <- result{status, body}
	}()
	var req *http.Request
	select {
	case req = <-pool.got:
	case res := <-done:
		t.Fatalf("the app got no request before its start was over; the client got %d %q", res.status, res.body)
	}
	if req.URL.RequestURI() != "/items?q=1" || req.Header.Get("X-Forwarded-Host") != "demo.example.test" {
		t.Errorf("the app got %s %s with headers %v", req.Method, req.URL, req.Header)
	}
	// The app answers on the connection the request came on, now that its
	// start is over.
	conn := <-pool.conns
	defer conn.Close()
	if _, err := io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nearly"); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.status != http.StatusOK || res.body != "early" {
		t.Errorf("client got %d %q, want 200 \"early\"", res.status, res.body)
	}
	if n := len(pool.runner.answers.get()); n != 1 {
		t.Errorf("%d first bytes reported, want 1", n)
	}
	if pool.runner.touches.Load() == 0 {
		t.Error("the runner was not touched for the request")
	}
}

func TestRequestSentAheadOfAFailedStart(t *testing.T) {
	pool := newAheadPool(t, connect.NewError(connect.CodeFailedPrecondition,
		errors.New("app failed to start: ZeroDivisionError: division by zero")))
	h := newHarness(t, pool, options{})
	h.routes.set("demo", "app1", "v1")

	status, _, body := h.do(t, http.MethodGet, "http://demo.example.test/", "", nil)
	// The start's failure, as without sending ahead: not an error of the
	// request the app never answered.
	if status != http.StatusBadGateway || !strings.Contains(body, "ZeroDivisionError: division by zero") {
		t.Errorf("got %d %q, want 502 naming the exception", status, body)
	}
	// And the gateway let go of the connection it was sent on.
	conn := <-pool.conns
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("the connection the request was sent on: read %v, want EOF (closed by the gateway)", err)
	}
}

// goneFirstPool's first runner, which Claim picks ahead, has stopped by
// the time Claim returns it (a crash right after its start); its second
// claim returns a runner answering at addr.
type goneFirstPool struct {
	first  net.Listener
	addr   string
	claims atomic.Int32
}

func (p *goneFirstPool) Claim(ctx context.Context, _ *v1.SpecializeRequest, picked func(string)) (Runner, error) {
	if p.claims.Add(1) > 1 {
		return newFakeRunner(p.addr), nil
	}
	picked(p.first.Addr().String())
	_ = p.first.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	conn, err := p.first.Accept()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := http.ReadRequest(bufio.NewReader(&laneServerConn{Conn: conn})); err != nil {
		return nil, err
	}
	r := newFakeRunner(p.first.Addr().String())
	close(r.done)
	return r, nil
}

func TestRequestSentAheadToARunnerGoneGetsAnother(t *testing.T) {
	first, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Close() })
	second, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("second") }}
	go func() { _ = srv.Serve(second) }()
	t.Cleanup(func() { _ = srv.Shutdown() })

	pool := &goneFirstPool{first: first, addr: second.Addr().String()}
	h := newHarness(t, pool, options{})
	h.routes.set("demo", "app1", "v1")
	status, _, body := h.do(t, http.MethodGet, "http://demo.example.test/", "", nil)
	if status != http.StatusOK || body != "second" {
		t.Errorf("got %d %q, want 200 from the second runner", status, body)
	}
	if n := pool.claims.Load(); n != 2 {
		t.Errorf("%d claims, want 2", n)
	}
}
