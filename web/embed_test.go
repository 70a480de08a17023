package web

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	h := Handler()
	tests := []struct {
		name, method, path string
		wantCode           int
		wantHTML           bool
	}{
		{name: "root is the app", method: "GET", path: "/", wantCode: 200, wantHTML: true},
		{name: "a page of the app", method: "GET", path: "/apps/notes", wantCode: 200, wantHTML: true},
		{name: "HEAD of a page", method: "HEAD", path: "/admin", wantCode: 200},
		{name: "POST is not served", method: "POST", path: "/", wantCode: 404},
		{name: "unknown top-level path", method: "GET", path: "/debug/pool", wantCode: 404},
		{name: "missing asset", method: "GET", path: "/assets/nope.js", wantCode: 404},
		{name: "dot-dot stays inside", method: "GET", path: "/../embed.go", wantCode: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.wantCode {
				t.Fatalf("%s %s = %d, want %d", tt.method, tt.path, rec.Code, tt.wantCode)
			}
			if !tt.wantHTML {
				return
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type = %q, want text/html", ct)
			}
			if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
				t.Errorf("Content-Security-Policy = %q, want default-src 'self'", csp)
			}
			if body := rec.Body.String(); !strings.Contains(body, "<title>gofastapi") {
				t.Errorf("body is not the editor's page: %.200q", body)
			}
		})
	}
}

// TestHandlerServesAssets checks that a built file is served as itself,
// with a long cache lifetime under /assets/.
func TestHandlerServesAssets(t *testing.T) {
	entries, err := dist.ReadDir("dist/assets")
	if err != nil || len(entries) == 0 {
		t.Skip("web/dist has no build (make build makes one)")
	}
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/assets/"+entries[0].Name(), nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /assets/%s = %d, want 200", entries[0].Name(), rec.Code)
	}
	if cc := rec.Header().Get("Cache-Control"); !strings.Contains(cc, "immutable") {
		t.Errorf("Cache-Control = %q, want immutable", cc)
	}
}

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		name, header string
		want         bool
	}{
		{name: "browser", header: "gzip, deflate, br, zstd", want: true},
		{name: "none", header: "", want: false},
		{name: "identity only", header: "identity", want: false},
		{name: "refused", header: "br, gzip;q=0", want: false},
		{name: "weighted", header: "gzip;q=0.5, br", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := acceptsGzip(tt.header); got != tt.want {
				t.Errorf("acceptsGzip(%q) = %v, want %v", tt.header, got, tt.want)
			}
		})
	}
}

// TestHandlerGzip checks that the page is sent gzipped to a client that
// accepts it, and plain to one that does not.
func TestHandlerGzip(t *testing.T) {
	h := Handler()
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding = %q, want gzip", rec.Header().Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), "<title>gofastapi") {
		t.Errorf("gunzipped body is not the page: %.200q", body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Header().Get("Content-Encoding") != "" || !strings.Contains(rec.Body.String(), "<title>gofastapi") {
		t.Errorf("without Accept-Encoding: Content-Encoding %q, body %.100q", rec.Header().Get("Content-Encoding"), rec.Body.String())
	}
}
