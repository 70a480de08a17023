// Package ratelimit counts events per key in fixed windows with Redis
// counters, so every control-plane replica shares one count. The control
// plane's auth service uses it to slow down password guessing on Login and
// Signup, per client address and per username.
//
// Invariants: counting and reading the window's remaining time is one
// atomic script, so concurrent attempts cannot slip past the limit; keys
// are stored as hashes, so Redis holds no usernames or addresses; every
// counter expires with its window.
package ratelimit
