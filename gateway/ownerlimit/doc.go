// Package ownerlimit counts the requests to each app owner's apps against
// the owner's request limit, for the gateway: a token bucket per owner
// that holds a minute's worth of requests and refills at the limit's
// pace, taken from in memory (Limits.Take, about 0.1 us).
//
// Gateway replicas share the buckets through Redis (Limits.Run with
// NewRedis), so that together they let through an owner's limit, not each
// one the whole of it. Every sync interval (100 ms in the platform) each
// gateway spends what it let through since its last sync from the owner's
// shared bucket and sets its own to what is left; an owner's first request
// at a gateway in a while waits for one sync, so a gateway that has not
// served the owner recently starts from the shared count. Between syncs
// each gateway may let through what it alone still sees, so replicas
// together can pass the limit by what they let through in one interval;
// what they let through past it is owed (down to a minute's worth) and
// paid back by the refill.
//
// In Redis each owner's bucket is a hash of its tokens, when they were
// counted, and each gateway's last spend number, refilled by Redis's
// clock, so gateways whose clocks differ agree; it expires two minutes
// after its last spend, when it would be full again. A spend is one atomic
// script. A sync that fails keeps its spends and sends them again, as they
// were, before any new ones; Redis takes a spend it has seen (by its
// gateway and number) once, so requests are neither forgotten nor counted
// twice when a sync failed after Redis ran some of its scripts. Requests
// let through before an owner's limit changed are spent at the size they
// were let through under (each earlier limit's apart, however many changes
// one interval saw), as the gateway's own bucket took them.
package ownerlimit
