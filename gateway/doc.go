// Package gateway is the platform's HTTP edge. On one port it serves the
// platform API on the apex domain and each app on {slug}.{domain}: it maps
// the host to the app's current version through an in-memory route cache,
// finds the runner serving that version or cold starts one, and proxies
// the request to it.
//
// Invariants:
//   - An app has at most one runner in service, for its current version.
//     However many requests arrive for a cold app version, one Pool.Claim
//     serves them all.
//   - A runner taken out of service (replaced by a new version, its app
//     deleted, or Shutdown) is released only after the gateway's requests
//     in flight on it have completed; a runner that stopped on its own is
//     forgotten, and the next request cold starts another.
//   - After Invalidate(slug) returns, the next request for slug reads the
//     route again, so a redeploy serves new code on the next request.
//   - Every error is turned into an HTTP status in one function
//     (classify), and the client sees a short page (HTML, or JSON when it
//     prefers JSON) naming the app and what to do, never Go internals.
//   - One connection pool per upstream (per runner, and one for the API);
//     no *fasthttp.RequestCtx or its bytes outlive the handler.
//
// SplitHTTP2 lets the same port carry HTTP/2 without TLS (gRPC), which the
// binary serves with net/http beside the gateway.
//
// The binary's wiring (cmd/gofastapi) uses it: it supplies the route
// source, the pool and the env source, serves the gateway, and calls
// Invalidate when a route changes.
package gateway
