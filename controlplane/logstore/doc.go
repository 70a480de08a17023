// Package logstore keeps each app's recent log lines in a capped Redis
// stream `logs:{app id}`: the app's stdout and stderr and the platform's own
// events about it (cold starts, crashes, reaping), and a capped list
// `coldstarts:{app id}` of structured cold start records with phase timings.
//
// The cap bounds memory whatever an app prints; old lines are dropped first.
package logstore
