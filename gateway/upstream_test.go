package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp/fasthttputil"
)

// closingUpstream is an app that answers the first request on each
// connection and closes the connection when the next one arrives, as a
// server does whose keep-alive timer fires just as a request comes in.
type closingUpstream struct {
	ln    *fasthttputil.InmemoryListener
	conns atomic.Int64
	wg    sync.WaitGroup
}

func newClosingUpstream(t *testing.T) *closingUpstream {
	u := &closingUpstream{ln: fasthttputil.NewInmemoryListener()}
	u.wg.Go(func() {
		for {
			c, err := laneListener{u.ln}.Accept()
			if err != nil {
				return
			}
			u.conns.Add(1)
			u.wg.Go(func() { u.serve(c) })
		}
	})
	t.Cleanup(func() {
		u.ln.Close()
		u.wg.Wait()
	})
	return u
}

func (u *closingUpstream) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, req.Body)
	_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	_, _ = br.Peek(1) // the next request arrives: close without answering
}

func (u *closingUpstream) dial(string) (net.Conn, error) { return u.ln.Dial() }

func TestStaleRunnerConnectionIsRetried(t *testing.T) {
	up := newClosingUpstream(t)
	h := newHarness(t, &fakePool{addr: "runner"}, options{dial: up.dial})
	h.routes.set("demo", "app1", "v1")

	if status, _, body := h.do(t, http.MethodGet, "http://demo.example.test/", "", nil); status != 200 || body != "ok" {
		t.Fatalf("first request: %d %q", status, body)
	}
	// The pooled connection fails before any answer: a GET may be
	// repeated, so it is, on a new connection.
	if status, _, body := h.do(t, http.MethodGet, "http://demo.example.test/", "", nil); status != 200 || body != "ok" {
		t.Errorf("GET on a stale connection: %d %q, want it retried", status, body)
	}
	if n := up.conns.Load(); n != 2 {
		t.Errorf("%d upstream connections, want 2", n)
	}
	// A POST may already have had its effect: it is not repeated.
	status, _, body := h.do(t, http.MethodPost, "http://demo.example.test/", "x", nil)
	if status != http.StatusBadGateway || !strings.Contains(body, "closed the connection without answering") {
		t.Errorf("POST on a stale connection: %d %q, want 502", status, body)
	}
	if n := up.conns.Load(); n != 2 {
		t.Errorf("%d upstream connections after the POST, want 2 (no retry)", n)
	}
}

func TestReadRawHead(t *testing.T) {
	tests := []struct {
		name string
		in   string
		code int // 0: an error
	}{
		{"switching protocols", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nframe", 101},
		{"refusal", "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", 403},
		{"bare newlines", "HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\n\n", 101},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", 0},
		{"no status", "HTTP/1.1\r\n\r\n", 0},
		{"letters for status", "HTTP/1.1 1x1 Nope\r\n\r\n", 0},
		{"cut short", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: web", 0},
		{"endless line", "HTTP/1.1 101 " + strings.Repeat("x", 8192), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			head, code, err := readRawHead(bufio.NewReader(strings.NewReader(tt.in)))
			if tt.code == 0 {
				if err == nil {
					t.Errorf("got %d %q, want an error", code, head)
				}
				return
			}
			if err != nil || code != tt.code || !strings.HasPrefix(tt.in, string(head)) || !strings.HasSuffix(string(head), "\n\n") && !strings.HasSuffix(string(head), "\r\n\r\n") {
				t.Errorf("got %d %q %v, want %d and the head through its blank line", code, head, err, tt.code)
			}
		})
	}
}
