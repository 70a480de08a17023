package auth

import (
	"net/http"
	"time"
)

// Session cookie names. Over https the cookie has the `__Host-` prefix:
// browsers then accept it only if it is Secure, host-only and for path /,
// so an app on a subdomain cannot plant its own session cookie on the
// platform's apex (cookie tossing). Over plain http (local development)
// there is no such protection to be had.
const (
	cookieName       = "gofastapi_session"
	secureCookieName = "__Host-gofastapi_session"
)

// CSRFHeader is the header a browser client may send, with any value, to
// prove that a cookie-authenticated call is not cross-site (a cross-site
// page cannot send it without a CORS preflight, which only the platform's
// own origin passes). Connect clients' Connect-Protocol-Version and
// gRPC-Web clients' X-Grpc-Web serve as well.
const CSRFHeader = "X-Gofastapi-Csrf"

var proofHeaders = []string{"Connect-Protocol-Version", "X-Grpc-Web", CSRFHeader}

// sessionCookie is the cookie that carries token for ttl. It has no Domain,
// so app subdomains never receive it.
func sessionCookie(token string, ttl time.Duration, https bool) *http.Cookie {
	c := &http.Cookie{
		Name: cookieName, Value: token, Path: "/", MaxAge: int(ttl / time.Second),
		HttpOnly: true, SameSite: http.SameSiteLaxMode,
	}
	if https {
		c.Name, c.Secure = secureCookieName, true
	}
	return c
}

// clearedCookie removes the session cookie from the browser.
func clearedCookie(https bool) *http.Cookie {
	c := sessionCookie("", 0, https)
	c.MaxAge = -1
	return c
}

// cookieToken returns the session token in the request's cookie, if any:
// over https only the `__Host-` cookie counts.
func cookieToken(h http.Header, https bool) string {
	name := cookieName
	if https {
		name = secureCookieName
	}
	r := http.Request{Header: h}
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}

// hasProof reports whether the request carries one of proofHeaders.
func hasProof(h http.Header) bool {
	for _, p := range proofHeaders {
		if h.Get(p) != "" {
			return true
		}
	}
	return false
}
