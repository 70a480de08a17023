// Package mongousers keeps MongoDB's own users in step with the platform's
// database accounts, for a platform whose store is an external MongoDB
// (gofastapi dev --mongo-uri ... --db-mongo-users).
//
// Each account (dbfront.Account, served by the databases service) is one
// MongoDB user in the admin database, named dbfront.UpstreamUser(username)
// ("gofastapi.alice" for alice), with the account's
// current password (SCRAM-SHA-256) and, as its roles, readWrite on each of
// its databases and nothing else. Sync.Refresh makes MongoDB match one
// account whatever state MongoDB was in: a missing user is created, an
// existing one updated (password and roles), the user of an account that
// is gone dropped. The databases service calls Refresh
// on every account change (it is a databases.AccountWatcher); SyncAll
// catches up with every account at start, so turning the mode on for an
// existing installation creates everyone (and drops the users of accounts
// deleted while it was off), and Run retries the accounts
// whose last sync failed until they succeed.
//
// With these users the wire front (package dbfront, Config.SignInUpstream)
// signs every app connection in to MongoDB as the app's owner, so MongoDB's
// roles check each command again, behind the front's own checks.
//
// The sync runs over the control plane's own connection, whose user must
// be allowed to manage users (MongoDB's userAdminAnyDatabase or root). It
// only ever creates, changes or drops users named with the prefix, which no
// platform username can forge (usernames have no dot): whatever name a user
// signs up with, the operator's own MongoDB users, that one included, are
// out of reach.
package mongousers
