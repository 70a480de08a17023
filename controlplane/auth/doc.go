// Package auth implements AuthService (signup, login, logout, sessions,
// password change), the interceptor that identifies the caller of every
// other RPC, and the HTTP layer in front of the API (client address, CORS,
// refusal of foreign origins).
//
// Invariants:
//   - Passwords are stored only as argon2id hashes and compared in
//     constant time; an unknown user and a wrong password get the same
//     answer after the same work.
//   - Session tokens are random, shown once, and stored only as their
//     sha256. Programs send them as `Authorization: Bearer`; browsers get
//     them only in an HttpOnly, SameSite=Lax cookie (`__Host-` and Secure
//     over https), never in a response body.
//   - A call authenticated by the cookie must prove it is not cross-site:
//     it carries a header a cross-site page cannot send without a CORS
//     preflight (Connect-Protocol-Version, X-Grpc-Web or X-Gofastapi-Csrf),
//     and its Origin, if any, is the platform's own. CORS answers only that
//     origin. App subdomains are same-site but not same-origin, so SameSite
//     alone would not stop them; the origin checks do.
//   - Login, Signup and ChangePassword are rate limited per client address
//     and per username. The client address is the connection's peer, or,
//     only on connections from the platform's own gateway, the last entry
//     of X-Forwarded-For (the one the gateway appended).
//   - Every RPC but Signup and Login runs with an authenticated Caller in
//     its context or not at all; a user being deleted has no valid session.
package auth
