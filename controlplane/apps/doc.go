// Package apps implements AppService: creating, deploying, listing and
// deleting a user's apps, and reading their logs. It also answers the edge's
// route lookups, rebuilding a route and its bundle from the platform database
// when Redis has lost them.
//
// Invariants: every RPC acts only on apps the caller owns (others' apps are
// reported as not found); a version is stored before its bundle is published
// and its bundle before the route points at it, so a route never names a
// version that does not exist.
package apps
