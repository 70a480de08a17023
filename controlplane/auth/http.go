package auth

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// HTTPConfig configures the HTTP layer in front of the API handlers.
type HTTPConfig struct {
	// Origins are the platform's own browser origins (its apex), such as
	// http://localhost:8080. Only they get CORS answers; a request from any
	// other origin is refused.
	Origins []string
	// TrustedProxy reports whether a connection comes from the platform's
	// own gateway, whose X-Forwarded-For and X-Forwarded-Proto are then
	// believed. On any other connection they are ignored, since a client
	// could write anything there. Nil trusts no connection.
	TrustedProxy func(net.Conn) bool
}

// Validate reports whether c is usable.
func (c HTTPConfig) Validate() error {
	if len(c.Origins) == 0 {
		return fmt.Errorf("auth: HTTPConfig.Origins is empty: name the platform's own origin")
	}
	for _, o := range c.Origins {
		if canonicalOrigin(o) != o {
			return fmt.Errorf("auth: origin %q must be scheme://host[:port] in lower case, without a path", o)
		}
	}
	return nil
}

// HTTP is the API's HTTP layer: it finds each request's client address and
// scheme, answers CORS for the platform's own origin and refuses requests
// from other origins.
type HTTP struct {
	cfg     HTTPConfig
	origins map[string]bool
}

// NewHTTP returns the HTTP layer for cfg.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &HTTP{cfg: cfg, origins: map[string]bool{}}
	for _, o := range cfg.Origins {
		h.origins[o] = true
	}
	return h, nil
}

type trustedConnKey struct{}

// ConnContext is the http.Server ConnContext hook: it marks connections
// from the trusted proxy.
func (h *HTTP) ConnContext(ctx context.Context, c net.Conn) context.Context {
	if h.cfg.TrustedProxy != nil && h.cfg.TrustedProxy(c) {
		return context.WithValue(ctx, trustedConnKey{}, true)
	}
	return ctx
}

// clientInfo is what the HTTP layer learned about a request's client.
type clientInfo struct {
	addr  string // IP address
	https bool
}

type clientKey struct{}

func clientFrom(ctx context.Context) (clientInfo, bool) {
	c, ok := ctx.Value(clientKey{}).(clientInfo)
	return c, ok
}

// corsAllowHeaders are the request headers the Connect, gRPC-Web and
// gofastapi clients send.
const corsAllowHeaders = "Content-Type, Connect-Protocol-Version, Connect-Timeout-Ms, Connect-Accept-Encoding, Connect-Content-Encoding, " +
	"Grpc-Timeout, X-Grpc-Web, X-User-Agent, X-Gofastapi-Csrf, Authorization"

// corsExposeHeaders are the response headers a browser client needs.
const corsExposeHeaders = "Grpc-Status, Grpc-Message, Grpc-Status-Details-Bin, Content-Encoding, Retry-After"

// Handler wraps next, the API's handlers.
func (h *HTTP) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ci := clientInfo{addr: hostOnly(r.RemoteAddr), https: r.TLS != nil}
		if trusted, _ := r.Context().Value(trustedConnKey{}).(bool); trusted {
			if a := lastForwarded(r.Header.Values("X-Forwarded-For")); a != "" {
				ci.addr = a
			}
			ci.https = strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
		}
		if origin := r.Header.Get("Origin"); origin != "" {
			if !h.origins[origin] {
				http.Error(w, fmt.Sprintf("requests from %s to the platform API are refused: use the platform from its own address", origin), http.StatusForbidden)
				return
			}
			hd := w.Header()
			hd.Add("Vary", "Origin")
			hd.Set("Access-Control-Allow-Origin", origin)
			hd.Set("Access-Control-Allow-Credentials", "true")
			hd.Set("Access-Control-Expose-Headers", corsExposeHeaders)
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				hd.Set("Access-Control-Allow-Methods", "POST, GET")
				hd.Set("Access-Control-Allow-Headers", corsAllowHeaders)
				hd.Set("Access-Control-Max-Age", "7200")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientKey{}, ci)))
	})
}

// lastForwarded returns the last address of X-Forwarded-For, the one the
// gateway appended; earlier ones came from the client and prove nothing.
func lastForwarded(values []string) string {
	if len(values) == 0 {
		return ""
	}
	v := values[len(values)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	v = strings.TrimSpace(v)
	if ip := net.ParseIP(v); ip != nil {
		return ip.String()
	}
	return ""
}

func hostOnly(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// canonicalOrigin returns o as browsers write an Origin header, or "".
func canonicalOrigin(o string) string {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return ""
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

// allowedOrigin reports whether the browser request with header h, if it
// is one, comes from one of origins: its Origin, if present, must be one
// of them, and its Sec-Fetch-Site, if present, must say same-origin (or
// none: typed by the user).
func allowedOrigin(h http.Header, origins map[string]bool) bool {
	if o := h.Get("Origin"); o != "" && !origins[o] {
		return false
	}
	switch h.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}
