// Package pool keeps generic runners warm and hands them out, one per app
// version, specialized and ready to serve.
//
// Invariants: a claim is decided in memory (no backend call unless the warm
// set is empty); at most Config.Max runners exist at once, counting those
// starting, warm and claimed; a runner that has been specialized is never
// given to another app: released, reaped or crashed runners are destroyed and
// replaced by fresh ones; an app idle for Config.IdleTimeout loses its runner
// (scale to zero).
//
// Backends (local processes, Kubernetes pods) implement the small Backend
// interface; the gateway uses the pool through its own Pool interface.
package pool
