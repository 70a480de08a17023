// Package logstore keeps each app's recent log lines in a capped Redis
// stream `logs:{app id}`: the app's stdout and stderr and the platform's own
// events about it (cold starts, crashes, reaping).
//
// The cap bounds memory whatever an app prints; old lines are dropped first.
package logstore
