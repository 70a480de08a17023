// Package embedded starts the stores of the embedded default (`gofastapi
// dev`): FerretDB in process over SQLite files, and redis-server as a child
// process on loopback with a random password and no persistence.
//
// Both listen only where the platform can reach them: FerretDB on a Unix
// socket inside the private data directory, Redis on 127.0.0.1 behind a
// password. Runners get a separate Redis user that may only GET bundles.
//
// FerretDB's lookups by _id do not use the _id index it makes (see
// indexIDs): while FerretDB runs, every collection also gets an index on
// the expression those lookups compare.
package embedded
