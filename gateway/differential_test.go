package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// observed is what a client can tell about a response, less what is
// expected to differ between two servers (Date, Server) or is about the
// connection rather than the message (Connection, Keep-Alive).
type observed struct {
	Status           int
	Header           http.Header
	ContentLength    int64    // -1: unknown (chunked)
	TransferEncoding []string // framing
	Body             string
}

// diffCase is one request of the differential test.
type diffCase struct {
	name   string
	method string
	path   string // raw: sent exactly as written
	header http.Header
	body   func() (io.Reader, string) // body and its Content-Type
}

func TestGatewayMatchesPlainUvicorn(t *testing.T) {
	t.Parallel()
	h, _ := newEdgeHarness(t, options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	direct, err := startPlainUvicorn(ctx, writeApp(t, edgePy), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(direct.kill)

	viaGateway := &http.Transport{
		DialContext:        func(context.Context, string, string) (net.Conn, error) { return h.dial() },
		DisableCompression: true, // see bodies exactly as sent
	}
	plain := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, direct.Addr())
		},
		DisableCompression: true,
	}
	t.Cleanup(viaGateway.CloseIdleConnections)
	t.Cleanup(plain.CloseIdleConnections)

	form := func() (io.Reader, string) {
		return strings.NewReader("name=J%C3%BCrgen+X&tags=a&tags=b%26c"), "application/x-www-form-urlencoded"
	}
	upload := func() (io.Reader, string) {
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		_ = w.SetBoundary("gofastapi-boundary-1234")
		_ = w.WriteField("note", "two files' worth")
		part, _ := w.CreatePart(textproto.MIMEHeader{
			"Content-Disposition": {`form-data; name="file"; filename="data.bin"`},
			"Content-Type":        {"application/octet-stream"},
		})
		_, _ = part.Write(bytes.Repeat([]byte{0, 1, 2, 254, 255}, 100_000))
		_ = w.Close()
		return &buf, w.FormDataContentType()
	}
	jsonBody := func() (io.Reader, string) {
		return strings.NewReader(`{"name":"widget","n":3,"nested":{"ok":true}}`), "application/json"
	}
	cors := http.Header{"Origin": {"https://editor.example"}}
	gzip := http.Header{"Accept-Encoding": {"gzip"}}

	tests := []diffCase{
		{name: "json", method: "GET", path: "/json"},
		{name: "json post", method: "POST", path: "/json", body: jsonBody},
		{name: "html", method: "GET", path: "/html"},
		{name: "plain text with cookies and custom headers", method: "GET", path: "/text"},
		{name: "form", method: "POST", path: "/form", body: form},
		{name: "multipart upload", method: "POST", path: "/upload", body: upload},
		{name: "percent-encoded path and repeated query", method: "GET", path: "/items/a%2Fb?q=%20x&q=2"},
		{name: "unicode path", method: "GET", path: "/items/%C3%A9t%C3%A9?q=%E2%9C%93"},
		{name: "HEAD", method: "HEAD", path: "/page"},
		{name: "HEAD on a GET-only route", method: "HEAD", path: "/json"},
		{name: "CORS preflight", method: "OPTIONS", path: "/json", header: http.Header{
			"Origin":                         {"https://editor.example"},
			"Access-Control-Request-Method":  {"POST"},
			"Access-Control-Request-Headers": {"X-Custom"},
		}},
		{name: "CORS preflight from a stranger", method: "OPTIONS", path: "/json", header: http.Header{
			"Origin":                        {"https://elsewhere.example"},
			"Access-Control-Request-Method": {"POST"},
		}},
		{name: "CORS simple request", method: "GET", path: "/text", header: cors},
		{name: "redirect 307", method: "GET", path: "/redirect307"},
		{name: "redirect 302 absolute with cookie", method: "GET", path: "/redirect302"},
		{name: "large", method: "GET", path: "/large"},
		{name: "empty 204", method: "GET", path: "/empty"},
		{name: "app 404", method: "GET", path: "/no/such/route"},
		{name: "app 405", method: "DELETE", path: "/json"},
		{name: "app 500", method: "GET", path: "/boom"},
		{name: "chunked", method: "GET", path: "/chunks"},
		{name: "gzip accepted, small body", method: "GET", path: "/json", header: gzip},
		{name: "gzip accepted, compressed by the app", method: "GET", path: "/gz/big", header: gzip},
		{name: "gzip accepted, large binary", method: "GET", path: "/large", header: gzip},
		{name: "validation error", method: "POST", path: "/form", body: func() (io.Reader, string) {
			return strings.NewReader("tags=a"), "application/x-www-form-urlencoded"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := observe(t, plain, tt)
			got := observe(t, viaGateway, tt)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("through the gateway vs plain uvicorn (-uvicorn +gateway):\n%s", diff)
			}
		})
	}
}

// observe sends tt with transport (never following redirects) and records
// the response. Both sides get Host demo.example.test, so absolute URLs an
// app builds agree.
func observe(t *testing.T, transport http.RoundTripper, tt diffCase) observed {
	t.Helper()
	var body io.Reader
	var contentType string
	if tt.body != nil {
		body, contentType = tt.body()
	}
	req, err := http.NewRequest(tt.method, "http://demo.example.test/", body)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = strings.SplitN(tt.path, "?", 2)[0] // the path exactly as written
	if _, q, ok := strings.Cut(tt.path, "?"); ok {
		req.URL.RawQuery = q
	}
	for k, vs := range tt.header {
		req.Header[k] = vs
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := transport.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", tt.method, tt.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", tt.method, tt.path, err)
	}
	hdr := resp.Header.Clone()
	for _, k := range []string{"Date", "Server", "Connection", "Keep-Alive"} {
		hdr.Del(k)
	}
	return observed{
		Status:           resp.StatusCode,
		Header:           hdr,
		ContentLength:    resp.ContentLength,
		TransferEncoding: resp.TransferEncoding,
		Body:             summarize(resp.Header.Get("Content-Encoding"), b),
	}
}

// summarize returns a body for comparison: as is when short, else its
// length and hash. A gzip member's modification time (bytes 4-7, the
// second the app compressed it) is zeroed first: the two servers may
// compress in different seconds.
func summarize(encoding string, b []byte) string {
	if encoding == "gzip" && len(b) >= 10 {
		b = bytes.Clone(b)
		copy(b[4:8], []byte{0, 0, 0, 0})
	}
	if len(b) <= 512 && !bytes.ContainsFunc(b, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' }) {
		return string(b)
	}
	return fmt.Sprintf("%d bytes, sha256 %x", len(b), sha256.Sum256(b))
}
