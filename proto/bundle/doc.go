// Package bundle defines the content address of an app version: how its files
// are hashed, encoded for Redis and verified before a runner loads them.
//
// It is a cross-component contract, like the messages in proto/: the control
// plane computes the hash when it stores a version and writes the encoded
// bundle under Key(hash); a runner fetches that key and calls Decode, which
// refuses any bundle whose files do not hash to the address it was fetched by.
// The hash covers file names and contents only, in name order, so the same
// files always have the same address whatever order they arrive in.
package bundle
