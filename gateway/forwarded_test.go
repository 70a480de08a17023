package gateway

import (
	"bufio"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAppSeesPublicHostAndForwardedHeaders(t *testing.T) {
	t.Parallel()
	// Loopback TCP, so the client has an address to forward.
	h, _ := newEdgeHarness(t, options{tcp: true})
	c, err := h.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)

	// The client claims to be behind a proxy and tries to spoof the
	// scheme and host the app sees, and sends hop-by-hop headers.
	resp, body := roundTrip(t, c, br, "GET /public?x=1 HTTP/1.1\r\n"+
		"Host: Demo.Example.Test:8443\r\n"+
		"X-Forwarded-For: 203.0.113.9\r\n"+
		"X-Forwarded-Proto: https\r\n"+
		"X-Forwarded-Host: evil.example\r\n"+
		"Connection: Keep-Alive, X-Hop\r\n"+
		"X-Hop: secret\r\n"+
		"Keep-Alive: timeout=5\r\n"+
		"TE: trailers\r\n"+
		"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"+
		"Upgrade: h2c\r\n"+
		"X-Kept: yes\r\n\r\n")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var seen struct {
		URL, Host, Scheme string
		Headers           map[string]string
	}
	if err := json.Unmarshal([]byte(body), &seen); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{"url": seen.URL, "host": seen.Host, "scheme": seen.Scheme}
	for _, k := range []string{"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "connection", "x-hop",
		"keep-alive", "te", "proxy-authorization", "upgrade", "x-kept"} {
		got[k] = seen.Headers[k]
	}
	want := map[string]string{
		// The public host exactly as the client sent it, port and case
		// included: the app builds its absolute URLs from it.
		"url":    "http://Demo.Example.Test:8443/public?x=1",
		"host":   "Demo.Example.Test:8443",
		"scheme": "http",
		// The client's claim, then the address the gateway saw. (uvicorn
		// derives request.client from the last entry it does not trust as
		// a proxy; this client is on loopback, which it does trust, so
		// request.client is not checked here.)
		"x-forwarded-for":   "203.0.113.9, 127.0.0.1",
		"x-forwarded-proto": "http",
		"x-forwarded-host":  "Demo.Example.Test:8443",
		"x-kept":            "yes",
		// Hop-by-hop, so not forwarded.
		"connection": "", "x-hop": "", "keep-alive": "", "te": "", "proxy-authorization": "", "upgrade": "",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("what the app saw (-want +got):\n%s", diff)
	}

	// A request line in absolute form names the host; a Host header that
	// disagrees neither routes the request nor reaches the app.
	resp, body = roundTrip(t, c, br, "GET http://demo.example.test/public HTTP/1.1\r\nHost: other.example.test\r\n\r\n")
	if err := json.Unmarshal([]byte(body), &seen); err != nil || resp.StatusCode != http.StatusOK ||
		seen.Host != "demo.example.test" || seen.Headers["x-forwarded-host"] != "demo.example.test" {
		t.Errorf("absolute form: %d, host %q, x-forwarded-host %q (%v)", resp.StatusCode, seen.Host, seen.Headers["x-forwarded-host"], err)
	}

	// The app's own hop-by-hop response headers stop at the gateway, and
	// the client's connection stays open.
	resp, body = roundTrip(t, c, br, "GET /hop HTTP/1.1\r\nHost: demo.example.test\r\n\r\n")
	gotHdr := map[string]string{}
	for _, k := range []string{"Keep-Alive", "Connection", "X-Resp-Hop", "X-Kept"} {
		gotHdr[k] = resp.Header.Get(k)
	}
	wantHdr := map[string]string{"Keep-Alive": "", "Connection": "", "X-Resp-Hop": "", "X-Kept": "1"}
	if diff := cmp.Diff(wantHdr, gotHdr); diff != "" || body != "hop" || resp.Close {
		t.Errorf("response headers (-want +got):\n%s\nbody %q, close %v", diff, body, resp.Close)
	}
	if resp, _ := roundTrip(t, c, br, "GET /healthz HTTP/1.1\r\nHost: demo.example.test\r\n\r\n"); resp.StatusCode != http.StatusOK {
		t.Errorf("next request on the connection: %d", resp.StatusCode)
	}
}
