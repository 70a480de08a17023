// Package gateway is the platform's HTTP edge. On one port it serves the
// platform API on the apex domain and each app on {slug}.{domain}, and on
// its custom domains (Config.Domains, cached in domains.go): it maps the
// host to the app's current version through an in-memory route cache,
// finds the runner serving that version or cold starts one, and proxies
// the request to it. An owner's apps together get at most the requests a
// minute their route says, through every gateway sharing Config.OwnerCounts
// (package ownerlimit: a token bucket per owner, shared through Redis,
// answered 429 beyond it).
//
// An app behind the gateway behaves as under plain uvicorn (a
// differential test holds it to that): status, headers and bodies pass
// unchanged, gzip included, apart from hop-by-hop headers, which stop at
// the gateway, and X-Forwarded-For, -Proto and -Host, which it sets. The
// app sees the Host header the client sent. Client and runner connections
// are kept alive, and pipelined requests, even for different apps, are
// answered in order. A runner on the gateway's machine is reached over its
// Unix socket ("unix:" and a path, which only the gateway and the app's own
// user may open), one in a pod over TCP. Requests go to a runner on the
// gateway's lane (upstream.go, and GatewayLane in runner/bootstrap.py): one
// length-prefixed frame each, holding the request as the gateway parsed
// and checked it, which the runner serves with less work than HTTP from
// anyone; answers come back in HTTP/1.1 behind one byte. A runner that
// answers a frame in plain HTTP (one of an earlier release) gets HTTP/1.1
// from then on. Small responses of known length are read whole and
// sent in one write (proxy.go, upstream.go); others stream piece by piece
// as the app produces them (stream.go), so server-sent events are not
// held back. A WebSocket handshake gets a runner connection of its own,
// and the two connections are spliced until either side closes
// (websocket.go).
//
// Invariants:
//   - An app has at most one runner in service, for its current version.
//     However many requests arrive for a cold app version, one Pool.Claim
//     serves them all.
//   - One request waiting for a cold start may be sent to the runner as
//     soon as the pool has picked it, before the app serves (a pool that
//     knows the address early calls Claim's picked); the runner reads it
//     and holds it until the app has started, so the app answers it without
//     waiting for the gateway to hear that the start is over. Only a
//     request without a body that may be repeated (GET, HEAD, OPTIONS)
//     goes ahead, and its answer is read only once the start has
//     succeeded: if the start fails, the client sees the start's error
//     and the app never answered it (coldstart.go).
//   - A runner taken out of service (replaced by a new version, its app
//     deleted, or Shutdown) is released only after the gateway's requests
//     in flight on it have completed; a streamed response counts until its
//     last byte, a WebSocket session until it closes. A runner that
//     stopped on its own is forgotten, and the next request cold starts
//     another. Runners with requests in flight are touched every second,
//     so the pool does not take a long request for idleness.
//   - After Invalidate(slug) returns, the next request for slug reads the
//     route again, so a redeploy serves new code on the next request.
//   - A client that hangs up is not left to the app to find out at its
//     next write: the gateway closes the runner connection, which the app
//     sees as a disconnect (request.is_disconnected()). It notices by
//     watching the client connection while a slow request or a streamed
//     response is under way (conn.go).
//   - A slow client cannot hold the gateway: ReadTimeout bounds reading a
//     request from its first byte, IdleTimeout a keep-alive wait,
//     WriteTimeout each write, and MaxConnsPerIP the connections from one
//     address. A request body over MaxRequestBodySize is answered 413.
//   - Every error is turned into an HTTP status in one function
//     (classify), and the client sees a short page (HTML, or JSON when it
//     prefers JSON) naming the app and what to do, never Go internals.
//   - One connection pool per upstream (per runner, and one for the API);
//     no *fasthttp.RequestCtx or its bytes outlive the handler.
//
// Every app request gets a new X-Request-Id (see requestid.go) that the
// app reads and its runner's log lines carry. When Config.Recorder is set,
// each app request is passed to it once its response head is known, which
// is how per-app metrics are kept (gateway/metrics); the gateway's own
// cost for it is one clock read.
//
// SplitHTTP2 lets the same port carry HTTP/2 without TLS (gRPC), which the
// binary serves with net/http beside the gateway.
//
// The binary's wiring (cmd/gofastapi) uses it: it supplies the route
// source, the pool and the env source, serves the gateway, and calls
// Invalidate when a route changes.
package gateway
