package gateway

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestRequestBodyLimit(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	h, _ := newEdgeHarness(t, options{edit: func(c *Config) { c.MaxRequestBodySize = limit }})

	t.Run("a body of exactly the limit reaches the app whole", func(t *testing.T) {
		body := strings.Repeat("0123456789abcdef", limit/16)
		status, _, got := h.do(t, http.MethodPost, "http://demo.example.test/size", body, nil)
		sum := sha256.Sum256([]byte(body))
		want := fmt.Sprintf(`{"size":%d,"sha256":"%s"}`, limit, hex.EncodeToString(sum[:]))
		if status != http.StatusOK || got != want {
			t.Errorf("got %d %s, want 200 %s", status, got, want)
		}
	})

	// Over the limit: fasthttp answers as soon as it knows (from
	// Content-Length, or once the chunks pass the limit), so the tests write
	// the request raw instead of racing a client that is still sending.
	for _, tt := range []struct {
		name, head, body string
	}{
		{"declared length", fmt.Sprintf("Content-Length: %d\r\n", limit+1), ""},
		{"chunked", "Transfer-Encoding: chunked\r\n", fmt.Sprintf("%x\r\n%s\r\n", limit+1, strings.Repeat("x", limit+1))},
	} {
		t.Run("over the limit, "+tt.name, func(t *testing.T) {
			c, err := h.dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			raw := "POST /size HTTP/1.1\r\nHost: demo.example.test\r\nAccept: application/json\r\n" + tt.head + "\r\n"
			go func() { _, _ = io.WriteString(c, raw+tt.body) }() // may be cut short by the answer
			resp, body := readResponse(t, bufio.NewReader(c), raw)
			// JSON as asked, except where fasthttp has dropped the request
			// head by the time it reports the error (chunked): then HTML.
			for _, want := range []string{"1 MiB (1048576 bytes)", "Send a smaller body"} {
				if !strings.Contains(body, want) {
					t.Errorf("answer %q does not say %q", body, want)
				}
			}
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("status %d, want 413", resp.StatusCode)
			}
		})
	}
}

func TestSlowClientIsCutOff(t *testing.T) {
	t.Parallel()
	dial := newUpstream(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") })
	h := newHarness(t, &fakePool{addr: "runner"}, options{dial: dial, edit: func(c *Config) {
		c.ReadTimeout = 200 * time.Millisecond
	}})
	h.routes.set("demo", "app1", "v1")

	c, err := h.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The reader learns when the gateway gives up on the connection.
	answer := make(chan string, 1)
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		b, _ := io.ReadAll(c)
		answer <- string(b)
	}()
	// Slowloris: a header that never ends, one byte per tick. The ticker
	// is the client's pace, not a wait for the gateway; were ReadTimeout
	// not enforced, the header would outgrow the read buffer after 4 KiB
	// and the answer would be 431, not 408.
	header := "GET / HTTP/1.1\r\nHost: demo.example.test\r\nX-Slow: "
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
dribble:
	for i := 0; ; i++ {
		b := byte('a' + i%26)
		if i < len(header) {
			b = header[i]
		}
		if _, err := c.Write([]byte{b}); err != nil {
			break // closed under us
		}
		select {
		case <-closed:
			break dribble
		case <-tick.C:
		}
	}
	wait(t, closed, "connection closed")
	if got := <-answer; !strings.HasPrefix(got, "HTTP/1.1 408 ") {
		t.Errorf("answer %q, want 408", got)
	}
}

func TestMaxConnsPerIP(t *testing.T) {
	t.Parallel()
	dial := newUpstream(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") })
	h := newHarness(t, &fakePool{addr: "runner"}, options{dial: dial, tcp: true, edit: func(c *Config) {
		c.MaxConnsPerIP = 2
	}})
	h.routes.set("demo", "app1", "v1")
	const get = "GET / HTTP/1.1\r\nHost: demo.example.test\r\n\r\n"

	// open dials the gateway and, when want is 200, proves with a request
	// that the connection is served (so it is counted).
	type conn struct {
		net.Conn
		br *bufio.Reader
	}
	open := func() conn {
		t.Helper()
		c, err := h.dial()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return conn{c, bufio.NewReader(c)}
	}
	served := func(c conn) {
		t.Helper()
		if resp, body := roundTrip(t, c, c.br, get); resp.StatusCode != http.StatusOK || body != "ok" {
			t.Fatalf("got %d %q, want 200 ok", resp.StatusCode, body)
		}
	}
	c1, c2 := open(), open()
	served(c1)
	served(c2)

	// The third is refused: a 429 naming the limit, then closed.
	c3 := open()
	b, _ := io.ReadAll(c3)
	if !strings.HasPrefix(string(b), "HTTP/1.1 429 ") || !strings.Contains(string(b), "the limit is 2") {
		t.Errorf("third connection got %q, want 429 naming the limit", b)
	}

	// Once one closes (the client reads the gateway's close, which comes
	// after its slot was freed), another is served.
	if resp, _ := roundTrip(t, c1, c1.br, "GET / HTTP/1.1\r\nHost: demo.example.test\r\nConnection: close\r\n\r\n"); !resp.Close {
		t.Fatal("Connection: close not honoured")
	}
	if _, err := io.ReadAll(c1.br); err != nil {
		t.Fatal(err)
	}
	served(open())
	served(c2) // untouched throughout
}
