package gateway

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
)

// A client that leaves mid-request must not leave the app working for
// nobody: the gateway closes the runner connection, and the app's
// request.is_disconnected() (or a streaming response's own check) sees
// it. Each case has the app record the disconnect in an asyncio.Event
// that a second endpoint waits on; that second request answering is the
// proof, so nothing here waits on a clock.
func TestClientDisconnectReachesApp(t *testing.T) {
	t.Parallel()
	h, _ := newEdgeHarness(t, options{})

	t.Run("while the app has not answered", func(t *testing.T) {
		c, err := h.dial()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: demo.example.test\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		// The app is now looping on request.is_disconnected().
		if status, _, body := h.do(t, http.MethodGet, "http://demo.example.test/wait/arrived", "", nil); status != http.StatusOK {
			t.Fatalf("/wait/arrived: %d %s", status, body)
		}
		c.Close()
		status, _, body := h.do(t, http.MethodGet, "http://demo.example.test/wait/gone", "", nil)
		if status != http.StatusOK || body != `{"gone":true}` {
			t.Errorf("/wait/gone: %d %s", status, body)
		}
	})

	t.Run("while a response streams", func(t *testing.T) {
		c, err := h.dial()
		if err != nil {
			t.Fatal(err)
		}
		raw := "GET /feed HTTP/1.1\r\nHost: demo.example.test\r\n\r\n"
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		req, _ := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		resp, err := http.ReadResponse(bufio.NewReader(c), req)
		if err != nil {
			t.Fatal(err)
		}
		// The first event arrives; then the app waits forever for the
		// next, and the gateway has nothing to write that could fail.
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || line != "data: 1\n" {
			t.Fatalf("first event: %q %v", line, err)
		}
		c.Close()
		status, _, body := h.do(t, http.MethodGet, "http://demo.example.test/feed/gone", "", nil)
		if status != http.StatusOK || body != `{"gone":true}` {
			t.Errorf("/feed/gone: %d %s", status, body)
		}
	})
}
