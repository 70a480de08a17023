// Package metrics records what the gateway sees of each app: request
// counts by status class, a latency histogram, the latest error answers,
// and the state of the app's runner (up, crashed, its own /health). It
// keeps all of it in memory and flushes it to a Sink every flush interval,
// so no request waits for a database.
//
// Recording a request (Recorder.Record) is lock-free and allocates
// nothing: the per-app counters and histogram buckets are atomics, found
// through a copy-on-write map that is only rewritten when a new app shows
// up. Only an error answer (4xx, 5xx) takes the app's own small lock, to
// keep a copy of its method and path.
//
// A flush swaps every counter for zero, so each request is counted in
// exactly one flushed window (its status and its latency may land in two
// neighbouring ones). Windows are counted into the minute of the flush.
//
// The binary's wiring (cmd/gofastapi) creates a Recorder, hands it to the
// gateway as its gateway.Recorder, tells it when runners start, stop and
// crash, and supplies the Sink (the platform database). The Recorder also
// probes each running app's GET /health every probe interval.
package metrics
