// Package store keeps the platform's own data in MongoDB: users and their
// limits, sessions, apps and their immutable versions, the platform
// settings and the activity feed. It is the control plane's only door to
// the platform database; callers see domain types and the sentinel errors
// of errors.go, never driver errors.
//
// Invariants: usernames and app names are unique (unique indexes, not
// check-then-insert); a version is written once under (app, content hash) and
// never changed; a session is found only by the hash of its token; the
// first user to be created is the admin, decided by the insert of a fixed
// settings document; the platform never loses its last admin (a guarded
// admin count, recomputed from the users at every Open).
package store
