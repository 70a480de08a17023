// Package admin implements AdminService: the platform's users, roles,
// limits and settings, the dashboard's figures and activity feed, and the
// deletion of a user with everything they own. It also provides Imports,
// the import allowlist in force, which the deploy path reads at every
// validation.
//
// Invariants:
//   - Every RPC checks that the caller is an admin, from the user record
//     loaded for this very call, so a demotion takes effect at once.
//   - The platform always has an admin: nobody demotes or deletes
//     themselves, and the store refuses to remove the last admin (a
//     conditional update of the admin count, not a check then a write).
//   - DeleteUser removes the user document last: if a step fails, the user
//     stays, marked as being deleted (no login, no session), and the call
//     can be repeated. Each kind of user data outside the user document
//     is deleted by the component that owns it, through UserData.
//
// The binary's wiring (cmd/gofastapi) constructs it with the store, the
// owners of user data and a view of the runner pool.
package admin
