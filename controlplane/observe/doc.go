// Package observe serves MetricsService: an app's request statistics,
// recent error answers (with the app's traceback for a 5xx) and health,
// to the app's owner or an admin.
//
// It only reads. The gateway's metrics recorder (gateway/metrics) writes
// what it saw to the platform database (controlplane/store), the pool's
// cold start records and the app's logs are in Redis (controlplane/logstore).
// Health is decided here, from those, by assess (health.go).
//
// The binary's wiring (cmd/gofastapi) serves it behind the auth
// interceptor.
package observe
