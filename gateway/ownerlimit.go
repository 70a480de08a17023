package gateway

import (
	"fmt"
	"sync"
	"time"
)

// overLimit is the error of a request refused because its app's owner has
// had their requests of the minute (see ownerLimits).
type overLimit struct {
	perMinute int32
	retry     time.Duration // until the next request would be let through
}

func (e *overLimit) Error() string {
	return fmt.Sprintf("gateway: owner's limit of %d requests a minute reached; next in %s", e.perMinute, e.retry)
}

// pruneEvery is how many takes pass between sweeps of the buckets that
// have refilled (owners idle for a minute), which are then forgotten.
const pruneEvery = 4096

// ownerLimits holds a token bucket per app owner with a request limit
// (the route's owner_requests_per_minute): it holds a minute's worth of
// requests and refills at the limit's pace, so an owner's apps together
// get perMinute requests a minute through this gateway, all at once if
// they come so. Each gateway counts only what it serves.
type ownerLimits struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	takes   int
}

type bucket struct {
	tokens    float64
	perMinute int32
	last      time.Time
}

// take counts one request for owner's apps, whose limit is perMinute (0:
// none); it returns nil, or an *overLimit when the owner's bucket is empty.
func (o *ownerLimits) take(owner string, perMinute int32, now time.Time) error {
	if perMinute <= 0 {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.buckets == nil {
		o.buckets = make(map[string]*bucket)
	}
	if o.takes++; o.takes%pruneEvery == 0 {
		o.prune(now)
	}
	b := o.buckets[owner]
	if b == nil {
		b = &bucket{tokens: float64(perMinute), perMinute: perMinute, last: now}
		o.buckets[owner] = b
	}
	if b.perMinute != perMinute {
		// The limit changed: the bucket keeps what is left, up to the new
		// size.
		b.perMinute = perMinute
		b.tokens = min(b.tokens, float64(perMinute))
	}
	b.refill(now)
	if b.tokens < 1 {
		perToken := time.Minute / time.Duration(perMinute)
		return &overLimit{perMinute: perMinute, retry: time.Duration((1 - b.tokens) * float64(perToken))}
	}
	b.tokens--
	return nil
}

// refill adds what the time since the last take earned, up to a minute's
// worth.
func (b *bucket) refill(now time.Time) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(float64(b.perMinute), b.tokens+d.Minutes()*float64(b.perMinute))
		b.last = now
	}
}

// prune forgets the buckets that are full again: the next take of their
// owner starts a full one, which is the same.
func (o *ownerLimits) prune(now time.Time) {
	for owner, b := range o.buckets {
		if b.refill(now); b.tokens >= float64(b.perMinute) {
			delete(o.buckets, owner)
		}
	}
}
