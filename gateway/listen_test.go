package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// splitServers serves SplitHTTP2 on a loopback port: fasthttp on the
// HTTP/1 side answering "h1", net/http h2c on the HTTP/2 side answering its
// protocol. It returns the address and both listeners.
func splitServers(t *testing.T) (addr string, h1, h2 net.Listener) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h1, h2 = SplitHTTP2(l)

	s1 := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("h1 " + string(ctx.Path())) }}
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	s2 := &http.Server{
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, r.Proto+" "+r.URL.Path)
		}),
	}
	done1, done2 := make(chan error, 1), make(chan error, 1)
	go func() { done1 <- s1.Serve(h1) }()
	go func() { done2 <- s2.Serve(h2) }()
	t.Cleanup(func() {
		if err := s1.Shutdown(); err != nil {
			t.Errorf("fasthttp Shutdown: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s2.Shutdown(ctx); err != nil {
			t.Errorf("net/http Shutdown: %v", err)
		}
		if err := <-done1; err != nil {
			t.Errorf("fasthttp Serve: %v", err)
		}
		if err := <-done2; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("net/http Serve: %v", err)
		}
	})
	return l.Addr().String(), h1, h2
}

func TestSplitHTTP2RoutesByPreface(t *testing.T) {
	addr, h1, h2 := splitServers(t)
	if h1.Addr().String() != addr || h2.Addr().String() != addr {
		t.Errorf("Addr() = %v, %v; want %s", h1.Addr(), h2.Addr(), addr)
	}

	t.Run("h2c client reaches the HTTP/2 side", func(t *testing.T) {
		var protocols http.Protocols
		protocols.SetUnencryptedHTTP2(true)
		tr := &http.Transport{Protocols: &protocols}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get("http://" + addr + "/grpc")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if got, want := string(body), "HTTP/2.0 /grpc"; got != want {
			t.Errorf("body = %q, want %q", got, want)
		}
	})

	// Requests shorter than the 24-byte preface must be sorted without
	// waiting for more bytes: the client sends nothing more before the
	// answer.
	for _, raw := range []string{
		"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",                                  // 18 bytes
		"PUT /p HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", // shares "P" with the preface
	} {
		t.Run("short HTTP/1 request "+strings.Fields(raw)[0]+" "+strings.Fields(raw)[1], func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, raw); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if want := "h1 " + strings.Fields(raw)[1]; string(body) != want {
				t.Errorf("body = %q, want %q", body, want)
			}
		})
	}

	t.Run("HTTP/1 client keeps its connection", func(t *testing.T) {
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		for _, path := range []string{"/one", "/two"} {
			resp, err := (&http.Client{Transport: tr}).Get("http://" + addr + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "h1 "+path {
				t.Errorf("body = %q, want %q", body, "h1 "+path)
			}
		}
	})
}

func TestSplitHTTP2Close(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h1, h2 := SplitHTTP2(l)

	if err := h1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := h1.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v, want net.ErrClosed", err)
	}

	// The HTTP/2 side still works while the HTTP/1 side is closed, and an
	// HTTP/1 connection is closed instead of being left hanging.
	c1, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	if _, err := io.WriteString(c1, "GET / HTTP/1.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Read(make([]byte, 1)); err == nil {
		t.Error("HTTP/1 connection to a closed side was not closed")
	}

	c2, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.Write(append(h2Preface, "rest"...)); err != nil {
		t.Fatal(err)
	}
	got, err := h2.Accept()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, len(h2Preface)+4)
	if _, err := io.ReadFull(got, b); err != nil {
		t.Fatal(err)
	}
	if string(b) != string(h2Preface)+"rest" {
		t.Errorf("replayed %q", b)
	}
	got.Close()

	// Closing the second closes l.
	if err := h2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("l.Accept after closing both = %v, want net.ErrClosed", err)
	}
	if _, err := h2.Accept(); err == nil {
		t.Error("Accept after Close succeeded")
	}
}
