// Package auth implements AuthService (signup, login, logout, me) and the
// interceptor that identifies the caller of every other RPC.
//
// Invariants: passwords are stored only as argon2id hashes; session tokens
// are random, shown once, and stored only as their sha256; an unknown user
// and a wrong password get the same answer; every RPC but Signup and Login
// runs with an authenticated User in its context or not at all.
package auth
