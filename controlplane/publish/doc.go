// Package publish writes what the edge reads from Redis: bundles under
// `bundle:{hash}` and route records under `route:{slug}`, and announces route
// changes on the `routes` pub/sub channel.
//
// Redis is a cache: everything written here can be rebuilt from the platform
// database, so losing Redis loses no user data. A bundle is written before
// any route points at it, so a route never names a missing bundle unless
// Redis lost it (then the control plane rebuilds it on the next lookup).
package publish
