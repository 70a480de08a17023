package gateway

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/valyala/fasthttp"
	"golang.org/x/net/websocket"
)

// dialWS opens a WebSocket to path on app "demo" through the gateway.
func dialWS(t *testing.T, h *harness, path string) *websocket.Conn {
	t.Helper()
	cfg, err := websocket.NewConfig("ws://demo.example.test"+path, "http://demo.example.test")
	if err != nil {
		t.Fatal(err)
	}
	c, err := h.dial()
	if err != nil {
		t.Fatal(err)
	}
	ws, err := websocket.NewClient(cfg, c)
	if err != nil {
		c.Close()
		t.Fatalf("handshake: %v", err)
	}
	return ws
}

func TestWebSocketProxy(t *testing.T) {
	t.Parallel()
	h, pool := newEdgeHarness(t, options{})

	t.Run("echo both ways", func(t *testing.T) {
		ws := dialWS(t, h, "/ws")
		var got []string
		recv := func() {
			t.Helper()
			var msg string
			if err := websocket.Message.Receive(ws, &msg); err != nil {
				t.Fatalf("receive: %v", err)
			}
			got = append(got, msg)
		}
		recv() // the app speaks first
		big := strings.Repeat("x", 1<<20)
		for _, m := range []string{"one", "two", big} {
			if err := websocket.Message.Send(ws, m); err != nil {
				t.Fatal(err)
			}
			recv()
		}
		want := []string{"hello", "echo: one", "echo: two", "echo: " + big}
		if diff := cmp.Diff(want, got, cmp.Transformer("short", shorten)); diff != "" {
			t.Errorf("messages (-want +got):\n%s", diff)
		}

		if err := websocket.Message.Send(ws, []byte{0, 1, 2}); err != nil {
			t.Fatal(err)
		}
		var bin []byte
		if err := websocket.Message.Receive(ws, &bin); err != nil {
			t.Fatal(err)
		}
		if want := []byte("echo: \x00\x01\x02"); string(bin) != string(want) {
			t.Errorf("binary echo %q, want %q", bin, want)
		}

		ws.Close()
		// The app saw the close: its handler left its receive loop.
		status, _, body := h.do(t, http.MethodGet, "http://demo.example.test/ws/closed", "", nil)
		if status != http.StatusOK || body != `{"closed":true}` {
			t.Errorf("/ws/closed: %d %s", status, body)
		}
	})

	t.Run("refused handshake is a plain response", func(t *testing.T) {
		c, err := h.dial()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		resp, _ := roundTrip(t, c, br, "GET /ws/deny HTTP/1.1\r\nHost: demo.example.test\r\nConnection: Upgrade\r\n"+
			"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("status %d, want 403 from the app", resp.StatusCode)
		}
		// Nothing was hijacked: the connection serves the next request.
		resp, body := roundTrip(t, c, br, "GET /healthz HTTP/1.1\r\nHost: demo.example.test\r\n\r\n")
		if resp.StatusCode != http.StatusOK || body != `{"ok":true}` {
			t.Errorf("next request: %d %q", resp.StatusCode, body)
		}
	})

	t.Run("an open session holds its runner across a redeploy", func(t *testing.T) {
		ws := dialWS(t, h, "/ws")
		defer ws.Close()
		var msg string
		if err := websocket.Message.Receive(ws, &msg); err != nil || msg != "hello" {
			t.Fatalf("greeting %q %v", msg, err)
		}
		old := pool.byVersion(t, "edge")

		h.routes.set("demo", "app1", "edge2")
		h.g.Invalidate("demo")
		// Serving edge2 installs its runner and retires the old one, which
		// still has the session in flight.
		h.getJSON(t, "http://demo.example.test/healthz")
		if old.wasReleased() {
			t.Fatal("old runner released while a WebSocket session was open on it")
		}
		// The session still reaches the old app.
		if err := websocket.Message.Send(ws, "still here"); err != nil {
			t.Fatal(err)
		}
		if err := websocket.Message.Receive(ws, &msg); err != nil || msg != "echo: still here" {
			t.Fatalf("after redeploy: %q %v", msg, err)
		}
		ws.Close()
		wait(t, old.released, "old runner released once the session closed")
	})
}

// shorten keeps long test strings readable in diffs.
func shorten(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:32] + "..." + s[len(s)-16:]
}

func TestWebSocketRunnerUnreachable(t *testing.T) {
	refuse := func(string) (net.Conn, error) { return nil, errors.New("connection refused") }
	h := newHarness(t, &fakePool{addr: "runner"}, options{dial: refuse})
	h.routes.set("demo", "app1", "v1")
	c, err := h.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, body := roundTrip(t, c, bufio.NewReader(c), "GET /ws HTTP/1.1\r\nHost: demo.example.test\r\nConnection: Upgrade\r\n"+
		"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, `App &#34;demo&#34;`) {
		t.Errorf("got %d %q, want 502 naming the app", resp.StatusCode, body)
	}
}

func TestIsWebSocket(t *testing.T) {
	tests := []struct {
		name, raw string
		want      bool
	}{
		{"handshake", "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", true},
		{"any case, among other tokens", "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, upgrade\r\nUpgrade: foo, WebSocket\r\n\r\n", true},
		{"no Connection: Upgrade", "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", false},
		{"another protocol", "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", false},
		{"not a GET", "POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h fasthttp.RequestHeader
			if err := h.Read(bufio.NewReader(strings.NewReader(tt.raw))); err != nil {
				t.Fatal(err)
			}
			if got := isWebSocket(&h); got != tt.want {
				t.Errorf("isWebSocket = %v, want %v", got, tt.want)
			}
		})
	}
}
