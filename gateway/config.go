package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/gofastapi/gofastapi/gateway/ownerlimit"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// RouteSource says which version serves a slug. Route returns (nil, nil)
// when no app has that slug; any error means it could not tell. The
// gateway looks a route up again when a runner found its version's code
// missing from the bundle store: Route should put back what the route
// names if the store lost it.
type RouteSource interface {
	Route(ctx context.Context, slug string) (*v1.Route, error)
}

// DomainSource says which app a custom domain serves: AppForDomain
// returns its slug, or "" for a host no app has. Invalidate must be called
// with DomainChanged(host) when that changes.
type DomainSource interface {
	AppForDomain(ctx context.Context, host string) (string, error)
}

// Pool hands out runners specialized for one app version. Claim's errors
// are Connect errors: ResourceExhausted or Unavailable when no runner can
// be had now, FailedPrecondition (with a message for the user) when the app
// failed to start, DeadlineExceeded, NotFound when the bundle is missing.
//
// A pool that knows the runner's address before the runner serves calls
// picked with it, once, before Claim returns: the runner's listener must
// then accept connections already, holding what is sent until the app
// serves, and Claim returns that runner if it returns one. The gateway
// sends the request that waits for the start ahead of it that way (see
// sendsAhead). A pool may also never call picked.
type Pool interface {
	Claim(ctx context.Context, req *v1.SpecializeRequest, picked func(addr string)) (Runner, error)
}

// Runner is a runner serving one app version.
type Runner interface {
	// Addr is host:port of the app's HTTP listener.
	Addr() string
	// Touch records a request now; the pool reaps runners idle too long.
	Touch()
	// Done is closed once the runner has stopped (reaped, crashed, released).
	Done() <-chan struct{}
	// Release starts a graceful stop (requests in flight complete) and
	// returns without waiting for it. It is idempotent.
	Release()
	// Answered reports the first byte of a cold start: how long after the
	// Claim returned the app's answer to a request that waited for the
	// start began. The gateway calls it at most once per runner, and not
	// for a start no request waited for.
	Answered(firstByte time.Duration)
}

// EnvSource supplies the environment (variables and decrypted secrets) an
// app version is specialized with.
type EnvSource interface {
	Env(ctx context.Context, route *v1.Route) (map[string]string, error)
}

// Recorder receives every app request once its response head is known:
// the app's id, the status, the time since the request arrived, and the
// request's method, path (with query) and request id. The slices are valid
// only during the call. Record runs on the request path, so it must be
// cheap: no I/O, no allocation for a successful request.
type Recorder interface {
	Record(appID string, status int, d time.Duration, method, path, requestID []byte)
}

// Config configures a Gateway. Every field but Env, MaxConnsPerIP,
// Recorder, OwnerCounts and OwnerSync is required.
type Config struct {
	// Domain is the apex host name (no scheme, port or trailing dot): it
	// serves the platform API, and {slug}.{Domain} serves app slug.
	Domain string
	// API dials the platform API upstream, an HTTP/1.1 server.
	API func() (net.Conn, error)
	// Routes resolves slugs; Invalidate must be called when a route changes.
	Routes RouteSource
	// Domains, when set, resolves hosts outside Domain (custom domains) to
	// the apps they serve; without it such hosts are unknown.
	Domains DomainSource
	// Pool claims runners on a cold start.
	Pool Pool
	// Env, when set, fills SpecializeRequest.Env; nil means no environment.
	Env EnvSource
	// MaxRequestBodySize is the largest request body accepted, in bytes;
	// larger ones are answered 413 with a page naming the limit.
	MaxRequestBodySize int
	// ReadTimeout bounds reading a request, headers and body, from its
	// first byte (on a new connection: from the connection's opening), so
	// a client that sends its request byte by byte (slowloris) is cut off.
	// WriteTimeout bounds writing a response: all of it for a buffered
	// response or a streamed API response, each piece of a streamed app
	// response. IdleTimeout bounds waiting for a keep-alive connection's
	// next request.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// UpstreamTimeout bounds writing a request to a runner and waiting for
	// its response; for a streamed response, the wait for each piece.
	UpstreamTimeout time.Duration
	// ColdStartTimeout bounds a cold start: route lookup, env and Claim.
	ColdStartTimeout time.Duration
	// Concurrency caps the client connections served at once.
	Concurrency int
	// MaxConnsPerIP caps the connections open at once from one client IP
	// address, so one client cannot take every connection slot; more are
	// answered 429 and closed. 0 means no cap, which suits a machine that
	// all clients reach from one address (local development).
	MaxConnsPerIP int
	// Recorder, when set, records every app request (per-app metrics).
	Recorder Recorder
	// OwnerCounts, when set, shares the count of owners' requests with the
	// other gateways every OwnerSync (default 100ms), so that together they
	// let through each owner's limit (see package ownerlimit). Without it
	// each gateway lets through each owner's whole limit.
	OwnerCounts ownerlimit.Shared
	OwnerSync   time.Duration
	// Logger receives failed requests and background errors.
	Logger *slog.Logger
}

// Validate reports every missing or unusable field, each error wrapping
// ErrInvalidConfig and naming the field.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, problem string) {
		errs = append(errs, fmt.Errorf("%w: %s %s", ErrInvalidConfig, field, problem))
	}
	switch {
	case c.Domain == "":
		bad("Domain", "is empty")
	case strings.ContainsAny(c.Domain, ":/ ") || strings.HasSuffix(c.Domain, "."):
		bad("Domain", fmt.Sprintf("%q must be a bare host name, without scheme, port or trailing dot", c.Domain))
	}
	if c.API == nil {
		bad("API", "is nil")
	}
	if c.Routes == nil {
		bad("Routes", "is nil")
	}
	if c.Pool == nil {
		bad("Pool", "is nil")
	}
	if c.MaxRequestBodySize <= 0 {
		bad("MaxRequestBodySize", "must be positive")
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"ReadTimeout", c.ReadTimeout},
		{"WriteTimeout", c.WriteTimeout},
		{"IdleTimeout", c.IdleTimeout},
		{"UpstreamTimeout", c.UpstreamTimeout},
		{"ColdStartTimeout", c.ColdStartTimeout},
	} {
		if d.v <= 0 {
			bad(d.field, "must be positive")
		}
	}
	if c.Concurrency <= 0 {
		bad("Concurrency", "must be positive")
	}
	if c.OwnerSync < 0 {
		bad("OwnerSync", "must not be negative (0 means the default, 100ms)")
	}
	if c.MaxConnsPerIP < 0 {
		bad("MaxConnsPerIP", "must not be negative (0 means no cap)")
	}
	if c.Logger == nil {
		bad("Logger", "is nil")
	}
	return errors.Join(errs...)
}
