// Package validate checks an app's files before anything runs: names and sizes
// in Go, then syntax, imports and the entrypoint with Python's own ast module
// in the same interpreter the runners use, so line numbers are exact.
//
// Validation is an early, precise error for the user, not the security
// boundary; the runner sandbox is. The deploy path of the control plane uses it.
package validate
