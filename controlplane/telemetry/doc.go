// Package telemetry defines the operators' Prometheus metrics that are not
// the gateway's own (those are in gateway/metrics): Connect RPC rates,
// errors and latencies (an interceptor), Redis and MongoDB errors (a
// go-redis hook and a driver command monitor), the pool's runner counts
// and its cold starts, and the internal HTTP handler that serves /metrics
// with liveness (/healthz) and readiness (/readyz) beside it.
//
// Every metric goes to a registry the caller passes in; nothing is
// registered globally. The pool and its cold starts are observed through
// plain functions, so this package imports neither the pool nor the
// gateway; the binary's wiring (cmd/gofastapi) connects them.
package telemetry
