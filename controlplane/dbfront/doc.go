// Package dbfront is the MongoDB-wire front of the embedded default: the
// only door through which apps reach the platform's store (FerretDB), which
// has no authorization of its own.
//
// Why a front and not one store instance per user: one FerretDB serves every
// user with one set of goroutines and SQLite connections, where a store per
// user would cost a process (or an in-process FerretDB with its own pools)
// for each user with a database, and would still need something to check
// credentials in front of it. The front is one small, testable place that
// does what MongoDB's users and roles do in the cluster:
//
//   - Every connection authenticates with SCRAM-SHA-256 (the server side of
//     RFC 7677, as MongoDB speaks it in saslStart/saslContinue) against the
//     platform's credentials for the user (Accounts). Before that, only the
//     handshake (hello), ping, buildInfo and the SASL commands pass.
//   - Every command is on an allowlist and its target database ($db) must be
//     one of the caller's databases; so must the namespaces inside commands:
//     renameCollection's from and to, dataSize's namespace, and in
//     aggregation pipelines (at any depth) the db of $out, $merge, $lookup,
//     $graphLookup and $unionWith. listDatabases is answered with the
//     caller's databases only. Administrative commands (users, roles,
//     server status, logs, current operations, copy or clone) are refused.
//   - Cursors are connection-bound: getMore and killCursors pass only for
//     cursor ids the store returned on the same client connection, because
//     FerretDB's cursor ids are global and sequential.
//   - Limits: a storage quota per user (writes that would go past it are
//     refused, reads and deletes always pass), a query time limit (maxTimeMS
//     is set or clamped, and a command whose answer is later than the limit
//     is stopped by closing its store connection), and a connection limit per
//     user.
//
// Each client connection has its own store connection, so a store-side
// session, cursor or error never crosses between clients. With a store
// that has users of its own (an external MongoDB whose users package
// mongousers keeps in step with the accounts), Config.SignInUpstream signs
// that store connection in as the client's user before anything of the
// client's is forwarded, so the store's roles check every command again. The front never
// advertises compression, so it only sees OP_MSG and the legacy OP_QUERY
// hello.
//
// Invariant: no byte reaches the store from a client connection that has
// not passed the checks above for the user that authenticated it (with
// SignInUpstream, on a store connection signed in as that user). Users of
// the package: the dev wiring (cmd/gofastapi) starts it on loopback and the
// databases service (controlplane/databases) calls Refresh when a user's
// databases, quota or credentials change.
package dbfront
