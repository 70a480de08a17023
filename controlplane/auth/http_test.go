package auth

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
)

const apex = "http://localhost:8080"

func TestHTTPClientInfo(t *testing.T) {
	h, err := NewHTTP(HTTPConfig{Origins: []string{apex}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		trusted bool
		remote  string
		headers map[string][]string
		want    clientInfo
	}{
		{name: "direct client", remote: "192.0.2.7:5555", want: clientInfo{addr: "192.0.2.7"}},
		{name: "direct client cannot claim an address or https", remote: "192.0.2.7:5555",
			headers: map[string][]string{"X-Forwarded-For": {"10.0.0.1"}, "X-Forwarded-Proto": {"https"}},
			want:    clientInfo{addr: "192.0.2.7"}},
		{name: "gateway's appended address is believed", trusted: true, remote: "@",
			headers: map[string][]string{"X-Forwarded-For": {"10.0.0.1, 198.51.100.4"}, "X-Forwarded-Proto": {"http"}},
			want:    clientInfo{addr: "198.51.100.4"}},
		{name: "the last of several header lines", trusted: true, remote: "@",
			headers: map[string][]string{"X-Forwarded-For": {"10.0.0.1", "198.51.100.4"}},
			want:    clientInfo{addr: "198.51.100.4"}},
		{name: "https behind the gateway", trusted: true, remote: "@",
			headers: map[string][]string{"X-Forwarded-For": {"2001:db8::1"}, "X-Forwarded-Proto": {"https"}},
			want:    clientInfo{addr: "2001:db8::1", https: true}},
		{name: "garbage in the header is not an address", trusted: true, remote: "@",
			headers: map[string][]string{"X-Forwarded-For": {"not-an-ip"}},
			want:    clientInfo{addr: "@"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got clientInfo
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got, _ = clientFrom(r.Context()) })
			req := httptest.NewRequest("POST", "/gofastapi.v1.AuthService/Me", nil)
			req.RemoteAddr = tt.remote
			for k, vs := range tt.headers {
				for _, v := range vs {
					req.Header.Add(k, v)
				}
			}
			if tt.trusted {
				req = req.WithContext(context.WithValue(req.Context(), trustedConnKey{}, true))
			}
			h.Handler(next).ServeHTTP(httptest.NewRecorder(), req)
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(clientInfo{})); diff != "" {
				t.Errorf("client info (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHTTPOrigins(t *testing.T) {
	h, err := NewHTTP(HTTPConfig{Origins: []string{apex, "https://localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, origin string
		preflight            bool
		wantStatus           int
		wantCORS             string // Access-Control-Allow-Origin
		wantNext             bool
	}{
		{name: "no origin: a program", method: "POST", wantStatus: 200, wantNext: true},
		{name: "own origin", method: "POST", origin: apex, wantStatus: 200, wantCORS: apex, wantNext: true},
		{name: "own origin behind tls", method: "POST", origin: "https://localhost", wantStatus: 200, wantCORS: "https://localhost", wantNext: true},
		{name: "preflight from own origin", method: "OPTIONS", origin: apex, preflight: true, wantStatus: 204, wantCORS: apex},
		{name: "app subdomain is refused", method: "POST", origin: "http://evil.localhost:8080", wantStatus: 403},
		{name: "preflight from app subdomain", method: "OPTIONS", origin: "http://evil.localhost:8080", preflight: true, wantStatus: 403},
		{name: "other site", method: "POST", origin: "https://attacker.example", wantStatus: 403},
		{name: "other port", method: "POST", origin: "http://localhost:9999", wantStatus: 403},
		{name: "null origin", method: "POST", origin: "null", wantStatus: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true })
			req := httptest.NewRequest(tt.method, "/gofastapi.v1.AppService/ListApps", nil)
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			if tt.preflight {
				req.Header.Set("Access-Control-Request-Method", "POST")
			}
			rec := httptest.NewRecorder()
			h.Handler(next).ServeHTTP(rec, req)
			got := struct {
				Status int
				CORS   string
				Next   bool
			}{rec.Code, rec.Header().Get("Access-Control-Allow-Origin"), called}
			want := struct {
				Status int
				CORS   string
				Next   bool
			}{tt.wantStatus, tt.wantCORS, tt.wantNext}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if tt.wantCORS != "" && rec.Header().Get("Access-Control-Allow-Credentials") != "true" {
				t.Error("CORS answer without Access-Control-Allow-Credentials: true")
			}
		})
	}
}

func TestHTTPConfigValidate(t *testing.T) {
	for _, o := range []string{"localhost:8080", "http://localhost:8080/", "HTTP://LOCALHOST", "http://localhost/x", "ftp://x"} {
		if _, err := NewHTTP(HTTPConfig{Origins: []string{o}}); err == nil {
			t.Errorf("origin %q accepted", o)
		}
	}
	if _, err := NewHTTP(HTTPConfig{}); err == nil {
		t.Error("no origins accepted")
	}
}

func TestCredentials(t *testing.T) {
	i := NewInterceptor(nil, []string{apex}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	tests := []struct {
		name       string
		https      bool
		headers    map[string]string
		wantToken  string
		wantCookie bool
		wantErr    error
	}{
		{name: "bearer", headers: map[string]string{"Authorization": "Bearer gfa_x"}, wantToken: "gfa_x"},
		{name: "bearer wins over a cookie", headers: map[string]string{"Authorization": "Bearer gfa_x", "Cookie": "gofastapi_session=gfa_c"}, wantToken: "gfa_x"},
		{name: "not bearer", headers: map[string]string{"Authorization": "Basic abc"}, wantErr: errBadAuthHeader},
		{name: "empty bearer", headers: map[string]string{"Authorization": "Bearer "}, wantErr: errBadAuthHeader},
		{name: "nothing", wantErr: errUnauthenticated},
		{name: "cookie with connect header", headers: map[string]string{"Cookie": "gofastapi_session=gfa_c", "Connect-Protocol-Version": "1"},
			wantToken: "gfa_c", wantCookie: true},
		{name: "cookie with csrf header from own origin", headers: map[string]string{"Cookie": "a=b; gofastapi_session=gfa_c", CSRFHeader: "1", "Origin": apex, "Sec-Fetch-Site": "same-origin"},
			wantToken: "gfa_c", wantCookie: true},
		{name: "cookie with grpc-web header", headers: map[string]string{"Cookie": "gofastapi_session=gfa_c", "X-Grpc-Web": "1"},
			wantToken: "gfa_c", wantCookie: true},
		{name: "cookie without proof: a form post", headers: map[string]string{"Cookie": "gofastapi_session=gfa_c"}, wantErr: errCrossSite},
		{name: "cookie from an app subdomain", headers: map[string]string{"Cookie": "gofastapi_session=gfa_c", "Connect-Protocol-Version": "1", "Origin": "http://evil.localhost:8080"},
			wantErr: errCrossSite},
		{name: "cookie from a same-site page", headers: map[string]string{"Cookie": "gofastapi_session=gfa_c", "Connect-Protocol-Version": "1", "Sec-Fetch-Site": "same-site"},
			wantErr: errCrossSite},
		{name: "over https only the __Host- cookie counts", https: true, headers: map[string]string{"Cookie": "gofastapi_session=gfa_c", "Connect-Protocol-Version": "1"},
			wantErr: errUnauthenticated},
		{name: "__Host- cookie over https", https: true, headers: map[string]string{"Cookie": "__Host-gofastapi_session=gfa_s", "Connect-Protocol-Version": "1"},
			wantToken: "gfa_s", wantCookie: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.headers {
				h.Set(k, v)
			}
			ctx := context.WithValue(context.Background(), clientKey{}, clientInfo{addr: "127.0.0.1", https: tt.https})
			token, cookie, err := i.credentials(ctx, h)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if token != tt.wantToken || cookie != tt.wantCookie {
				t.Errorf("credentials = %q, cookie %v; want %q, %v", token, cookie, tt.wantToken, tt.wantCookie)
			}
		})
	}
}

func TestSessionCookie(t *testing.T) {
	tests := []struct {
		name  string
		https bool
		want  string
	}{
		{name: "http", want: "gofastapi_session=gfa_t; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax"},
		{name: "https", https: true, want: "__Host-gofastapi_session=gfa_t; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=Lax"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sessionCookie("gfa_t", time.Hour, tt.https).String(); got != tt.want {
				t.Errorf("cookie = %q, want %q", got, tt.want)
			}
			if got := clearedCookie(tt.https).String(); !strings.Contains(got, "Max-Age=0") || !strings.Contains(got, "HttpOnly") {
				t.Errorf("cleared cookie = %q, want Max-Age=0", got)
			}
		})
	}
}

func TestRateErrorCode(t *testing.T) {
	err := connectError(&rateError{what: "from your address", retry: 41500 * time.Millisecond})
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeResourceExhausted {
		t.Fatalf("code = %v, want ResourceExhausted", connect.CodeOf(err))
	}
	if !strings.Contains(ce.Message(), "try again in 42s") || ce.Meta().Get("Retry-After") != "42" {
		t.Errorf("message %q, Retry-After %q: want the wait in both", ce.Message(), ce.Meta().Get("Retry-After"))
	}
}

func TestAddrKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := addrKey(tt.in); got != tt.want {
			t.Errorf("addrKey(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
