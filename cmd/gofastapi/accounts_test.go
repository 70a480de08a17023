package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

// apiClients are the API's clients acting with one session token.
type apiClients struct {
	auth  gofastapiv1connect.AuthServiceClient
	apps  gofastapiv1connect.AppServiceClient
	admin gofastapiv1connect.AdminServiceClient
	tmpl  gofastapiv1connect.TemplateServiceClient
	asst  gofastapiv1connect.AssistantServiceClient
}

func (p *platform) url() string { return "http://127.0.0.1:" + p.port }

// as returns clients that send token (none if empty).
func (p *platform) as(token string) apiClients {
	opt := connect.WithInterceptors(bearer(token))
	return apiClients{
		auth:  gofastapiv1connect.NewAuthServiceClient(http.DefaultClient, p.url(), opt),
		apps:  gofastapiv1connect.NewAppServiceClient(http.DefaultClient, p.url(), opt),
		admin: gofastapiv1connect.NewAdminServiceClient(http.DefaultClient, p.url(), opt),
		tmpl:  gofastapiv1connect.NewTemplateServiceClient(http.DefaultClient, p.url(), opt),
		asst:  gofastapiv1connect.NewAssistantServiceClient(http.DefaultClient, p.url(), opt),
	}
}

// signup creates a user through the API and returns its session token.
func (p *platform) signup(t *testing.T, name, password string) (string, *v1.User) {
	t.Helper()
	res, err := p.as("").auth.Signup(context.Background(), connect.NewRequest(&v1.SignupRequest{Username: name, Password: password}))
	if err != nil {
		t.Fatalf("signup %s: %v", name, err)
	}
	return res.Msg.GetToken(), res.Msg.GetUser()
}

// createApp creates app name for token's user unless it exists.
func (p *platform) createApp(t *testing.T, token, name string) {
	t.Helper()
	_, err := p.as(token).apps.CreateApp(context.Background(), connect.NewRequest(&v1.CreateAppRequest{Name: name}))
	if err != nil && connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Fatalf("create app %s: %v", name, err)
	}
}

// deploy creates app name if needed and deploys app.py with source,
// returning the version.
func (p *platform) deploy(t *testing.T, token, name, source string) string {
	t.Helper()
	p.createApp(t, token, name)
	s, err := p.as(token).apps.Deploy(context.Background(), connect.NewRequest(&v1.DeployRequest{
		IdOrName: name, Files: []*v1.File{{Name: "app.py", Content: []byte(source)}}}))
	if err != nil {
		t.Fatalf("deploy %s: %v", name, err)
	}
	version := ""
	for s.Receive() {
		if v := s.Msg().GetVersion(); v != "" {
			version = v
		}
	}
	if err := s.Err(); err != nil {
		t.Fatalf("deploy %s: %v", name, err)
	}
	return version
}

// user returns a CLI of p with its own HOME, so its saved session is its
// own.
func (p *platform) user(t *testing.T) *platform {
	return &platform{t: t, port: p.port, home: t.TempDir(), logs: p.logs, exited: p.exited}
}

// mustFail runs the CLI, wants it to fail, and returns its output.
func (p *platform) mustFail(args ...string) string {
	p.t.Helper()
	out, err := p.cli(args...)
	if err == nil {
		p.t.Fatalf("gofastapi %s succeeded, want a failure:\n%s", strings.Join(args, " "), out)
	}
	return out
}

func wantContains(t *testing.T, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

// TestSimultaneousFirstSignups signs up several users at once on a fresh
// platform: exactly one becomes admin; and several at once under one name:
// exactly one gets it.
func TestSimultaneousFirstSignups(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	p := startPlatform(t, t.TempDir(), t.TempDir(), "--warm", "0", "--signin-rate-per-address", "0", "--signin-rate-per-user", "0")
	const n = 8
	var wg sync.WaitGroup
	admins := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			res, err := p.as("").auth.Signup(context.Background(), connect.NewRequest(&v1.SignupRequest{Username: fmt.Sprintf("racer%d", i), Password: "long enough"}))
			errs[i] = err
			admins[i] = err == nil && res.Msg.GetUser().GetAdmin()
		})
	}
	wg.Wait()
	nAdmins := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("signup racer%d: %v", i, errs[i])
		}
		if admins[i] {
			nAdmins++
		}
	}
	if nAdmins != 1 {
		t.Errorf("%d of %d simultaneous first signups became admin, want exactly 1", nAdmins, n)
	}

	codes := make([]connect.Code, n)
	for i := range n {
		wg.Go(func() {
			_, err := p.as("").auth.Signup(context.Background(), connect.NewRequest(&v1.SignupRequest{Username: "samename", Password: "long enough"}))
			codes[i] = codeOf(err)
		})
	}
	wg.Wait()
	count := map[connect.Code]int{}
	for _, c := range codes {
		count[c]++
	}
	if diff := cmp.Diff(map[connect.Code]int{codeOK: 1, connect.CodeAlreadyExists: n - 1}, count); diff != "" {
		t.Errorf("simultaneous signups under one name (-want +got):\n%s", diff)
	}
}

// TestSigninRateLimit exceeds the per-username and the per-address limits
// and checks that neither a forged X-Forwarded-For nor the h2c path gets
// around them.
func TestSigninRateLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	p := startPlatform(t, t.TempDir(), t.TempDir(), "--warm", "0", "--signin-rate-per-address", "6/1h", "--signin-rate-per-user", "3/1h")
	login := func(name string, header map[string]string) (connect.Code, *connect.Error) {
		req := connect.NewRequest(&v1.LoginRequest{Username: name, Password: "wrong password"})
		for k, v := range header {
			req.Header().Set(k, v)
		}
		_, err := p.as("").auth.Login(context.Background(), req)
		var ce *connect.Error
		errors.As(err, &ce)
		return codeOf(err), ce
	}
	for i := range 3 {
		if c, _ := login("erin", nil); c != connect.CodeUnauthenticated {
			t.Fatalf("attempt %d for erin: %s, want unauthenticated", i+1, codeName(c))
		}
	}
	c, ce := login("erin", nil)
	if c != connect.CodeResourceExhausted {
		t.Fatalf("4th attempt for erin: %s, want resource_exhausted", codeName(c))
	}
	wantContains(t, "per-username limit message", ce.Message(), "for this username", "try again in")
	if ra := ce.Meta().Get("Retry-After"); ra == "" {
		t.Error("no Retry-After header")
	}
	// Another username from the same address is not held by erin's limit
	// (this is the address's 5th attempt of 6).
	if c, _ := login("frank", nil); c != connect.CodeUnauthenticated {
		t.Errorf("frank after erin's limit: %s, want unauthenticated", codeName(c))
	}
	if c, _ := login("grace", nil); c != connect.CodeUnauthenticated {
		t.Errorf("6th attempt from the address: %s, want unauthenticated", codeName(c))
	}
	// The address's limit is reached: a forged X-Forwarded-For does not
	// help (the gateway appends the real address, which is the one that
	// counts), nor does going around the gateway over h2c.
	c, ce = login("heidi", map[string]string{"X-Forwarded-For": "203.0.113.9"})
	if c != connect.CodeResourceExhausted {
		t.Fatalf("7th attempt from the address, with a forged X-Forwarded-For: %s, want resource_exhausted", codeName(c))
	}
	wantContains(t, "per-address limit message", ce.Message(), "from your address")
	h2c := &http.Client{Transport: &http.Transport{Protocols: unencryptedHTTP2()}}
	grpcAuth := gofastapiv1connect.NewAuthServiceClient(h2c, p.url(), connect.WithGRPC())
	req := connect.NewRequest(&v1.LoginRequest{Username: "ivan", Password: "wrong password"})
	req.Header().Set("X-Forwarded-For", "203.0.113.10")
	if _, err := grpcAuth.Login(context.Background(), req); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Errorf("over gRPC/h2c with a forged X-Forwarded-For: %v, want resource_exhausted", err)
	}
	_, err := p.as("").auth.Signup(context.Background(), connect.NewRequest(&v1.SignupRequest{Username: "judy", Password: "long enough"}))
	if connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Errorf("signup from the limited address: %v, want resource_exhausted", err)
	}
}

// postJSON makes a Connect JSON call through the gateway as a browser
// would, with the given extra headers and cookies.
func (p *platform) postJSON(t *testing.T, procedure, body string, header map[string]string, cookies ...*http.Cookie) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", p.url()+procedure, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// TestSessionCookie plays a browser: the session comes as an HttpOnly,
// SameSite=Lax cookie and never in the body; cookie calls need the
// anti-CSRF header and the platform's own origin; CORS answers only that
// origin; Logout clears the cookie.
func TestSessionCookie(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	p := startPlatform(t, t.TempDir(), t.TempDir(), "--warm", "0")
	apex := "http://localhost:" + p.port
	evil := "http://evil.localhost:" + p.port
	res, body := p.postJSON(t, "/gofastapi.v1.AuthService/Signup", `{"username":"kim","password":"long enough"}`,
		map[string]string{"Origin": apex, "X-Forwarded-Proto": "https"})
	if res.StatusCode != 200 {
		t.Fatalf("browser signup: %d %s", res.StatusCode, body)
	}
	if strings.Contains(body, "gfa_") {
		t.Errorf("browser signup response carries the token in its body: %s", body)
	}
	var cookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == "gofastapi_session" {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatalf("no session cookie: %v", res.Header.Values("Set-Cookie"))
	}
	// X-Forwarded-Proto from the client is replaced by the gateway's, so
	// over plain http the cookie is not Secure.
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Secure || cookie.Path != "/" || cookie.Domain != "" {
		t.Errorf("cookie %s: want HttpOnly, SameSite=Lax, not Secure over http, Path=/, no Domain", res.Header.Get("Set-Cookie"))
	}
	if got := res.Header.Get("Access-Control-Allow-Origin"); got != apex {
		t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, apex)
	}

	proof := map[string]string{"Connect-Protocol-Version": "1", "Origin": apex}
	tests := []struct {
		name   string
		header map[string]string
		want   int
	}{
		{name: "cookie with the Connect header from the apex", header: proof, want: 200},
		{name: "cookie with the gofastapi header", header: map[string]string{"X-Gofastapi-Csrf": "1"}, want: 200},
		{name: "cookie without proof (a cross-site form)", header: nil, want: 403},
		{name: "cookie from an app's page", header: map[string]string{"Connect-Protocol-Version": "1", "Origin": evil}, want: 403},
		{name: "cookie from a same-site page", header: map[string]string{"Connect-Protocol-Version": "1", "Sec-Fetch-Site": "same-site"}, want: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := p.postJSON(t, "/gofastapi.v1.AuthService/Me", `{}`, tt.header, cookie)
			if res.StatusCode != tt.want {
				t.Errorf("Me = %d %s, want %d", res.StatusCode, body, tt.want)
			}
		})
	}
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequest("OPTIONS", p.url()+"/gofastapi.v1.AppService/ListApps", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type,connect-protocol-version")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	if res := preflight(apex); res.StatusCode != 204 || res.Header.Get("Access-Control-Allow-Origin") != apex ||
		!strings.Contains(res.Header.Get("Access-Control-Allow-Headers"), "Connect-Protocol-Version") {
		t.Errorf("preflight from the apex: %d %v", res.StatusCode, res.Header)
	}
	if res := preflight(evil); res.StatusCode != 403 || res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from an app: %d %v, want 403 without CORS headers", res.StatusCode, res.Header)
	}

	res, body = p.postJSON(t, "/gofastapi.v1.AuthService/Logout", `{}`, proof, cookie)
	if res.StatusCode != 200 || !strings.Contains(res.Header.Get("Set-Cookie"), "gofastapi_session=;") || !strings.Contains(res.Header.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("logout: %d %s, Set-Cookie %q: want the cookie cleared", res.StatusCode, body, res.Header.Get("Set-Cookie"))
	}
	if res, body := p.postJSON(t, "/gofastapi.v1.AuthService/Me", `{}`, proof, cookie); res.StatusCode != 401 {
		t.Errorf("Me with the logged-out cookie = %d %s, want 401", res.StatusCode, body)
	}
}
