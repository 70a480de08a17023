package ownerlimit

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Exceeded is the error of a request refused because its app's owner has
// had their requests of the minute.
type Exceeded struct {
	PerMinute int32
	Retry     time.Duration // until the next request would be let through
}

func (e *Exceeded) Error() string {
	return fmt.Sprintf("owner's limit of %d requests a minute reached; next in %s", e.PerMinute, e.Retry)
}

// pruneEvery is how many takes pass between sweeps of the buckets that
// have refilled (owners idle for a minute), which are then forgotten.
const pruneEvery = 4096

// Limits holds a token bucket per app owner with a request limit: it
// holds a minute's worth of requests and refills at the limit's pace, so
// an owner's apps together get perMinute requests a minute, all at once if
// they come so. The zero Limits counts alone; see Share. It is safe for
// concurrent use.
type Limits struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	takes   int
	// kick, when set (by Share, until Run returns), is signalled when a
	// bucket is made: its owner's shared bucket is asked for at once
	// instead of at the next tick.
	kick chan struct{}

	// seq numbers the spends of this Limits' syncs; unacked are those of
	// the last sync if it failed: Shared may have taken some of them
	// before it did, so the next sync sends them again, as they were,
	// before any new ones, and Shared takes each once (see Spend.Seq).
	seq          uint64
	unacked      []Spend
	unackedPrior []bool

	// Set by Share.
	shared Shared
	every  time.Duration
	log    *slog.Logger
}

// priorSpend is n requests let through under a limit of perMinute.
type priorSpend struct {
	n         int
	perMinute int32
}

type bucket struct {
	tokens    float64
	perMinute int32
	last      time.Time
	pending   int // requests let through since the last sync, if shared
	// priors are the requests let through since the last sync under the
	// owner's earlier limits, each limit's apart and in order: the shared
	// bucket takes them at those sizes, as this one did.
	priors []priorSpend
	taken  time.Time // the last request let through, or the bucket's making
	// synced, while not nil, is closed by the bucket's first sync; takes
	// wait for it.
	synced chan struct{}
}

// Take counts one request for owner's apps, whose limit is perMinute (0:
// none); it returns nil, or an *Exceeded when the owner's bucket is empty.
// When the buckets are shared, an owner's first request in a while waits
// for the next sync, which is asked for at once, to learn what the
// owner's shared bucket holds; the others take from memory.
func (o *Limits) Take(owner string, perMinute int32, now time.Time) error {
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
		b = &bucket{tokens: float64(perMinute), perMinute: perMinute, last: now, taken: now}
		o.buckets[owner] = b
		if o.kick != nil {
			b.synced = make(chan struct{})
			select {
			case o.kick <- struct{}{}:
			default: // a sync is asked for already
			}
		}
	}
	if synced := b.synced; synced != nil {
		o.mu.Unlock()
		<-synced
		o.mu.Lock()
		if cur := o.buckets[owner]; cur != nil {
			b = cur
		} else {
			o.buckets[owner] = b
		}
	}
	if b.perMinute != perMinute {
		// The limit changed: the bucket keeps what is left, up to the new
		// size.
		if b.pending > 0 {
			b.priors = append(b.priors, priorSpend{n: b.pending, perMinute: b.perMinute})
			b.pending = 0
		}
		b.perMinute = perMinute
		b.tokens = min(b.tokens, float64(perMinute))
	}
	b.refill(now)
	if b.tokens < 1 {
		perToken := time.Minute / time.Duration(perMinute)
		return &Exceeded{PerMinute: perMinute, Retry: time.Duration((1 - b.tokens) * float64(perToken))}
	}
	b.tokens--
	if o.kick != nil {
		b.pending++ // for the next sync
	}
	b.taken = now
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

// prune forgets the buckets that are full again and have nothing to
// sync: the next take of their owner starts a full one, which is the same.
func (o *Limits) prune(now time.Time) {
	for owner, b := range o.buckets {
		if b.refill(now); b.tokens >= float64(b.perMinute) && b.pending == 0 && len(b.priors) == 0 && b.synced == nil {
			delete(o.buckets, owner)
		}
	}
}

// Shared holds the owners' shared buckets. Spend takes each spend's N
// requests from its owner's bucket, which holds PerMinute requests and
// refills at that pace, in the order of spends, and returns what the
// bucket has left after each: a negative number when more were let
// through than it held.
type Shared interface {
	Spend(ctx context.Context, spends []Spend) (left []float64, err error)
}

// Spend is one owner's requests let through by one Limits since its last
// sync.
type Spend struct {
	Owner     string
	PerMinute int32 // the owner's limit, the shared bucket's size
	N         int
	// Seq numbers the spend among its Limits' spends, which it sends in
	// order. Shared takes a spend whose Seq it has seen from the same
	// Limits before (a sync that failed after some of its spends were
	// taken, sent again) only once: it answers what is left and takes
	// nothing.
	Seq uint64
}

// syncTimeout bounds a sync. An owner's first request waits for one at
// most that long; if it fails, the bucket counts alone until one succeeds.
const syncTimeout = 500 * time.Millisecond

// syncIdle is how long after its last request a bucket is still synced.
// An owner's bucket idle longer is forgotten at the next sync: their next
// request makes a new one, which is synced at once.
const syncIdle = 10 * time.Second

// sync spends every bucket's pending requests from the shared buckets and
// sets each local bucket to what its shared one has left, less what was
// let through here while sync waited. If the last sync failed, its spends
// go first, again and alone (Shared takes each once). If shared fails,
// the spends are kept for the next sync and the buckets count alone.
func (o *Limits) sync(ctx context.Context, shared Shared, now func() time.Time) error {
	o.mu.Lock()
	spends, prior := o.unacked, o.unackedPrior
	o.mu.Unlock()
	if len(spends) > 0 {
		left, err := shared.Spend(ctx, spends)
		if err := o.settle(spends, prior, left, err, now); err != nil {
			return err
		}
	}
	spends, prior = o.pending(now)
	if len(spends) == 0 {
		return nil
	}
	left, err := shared.Spend(ctx, spends)
	return o.settle(spends, prior, left, err, now)
}

// pending returns the spends of every bucket's requests let through since
// the last sync, numbered, and forgets the buckets idle for syncIdle with
// nothing to spend. prior[i] is set when spends[i] is a bucket's requests
// under one of its earlier limits, which its own spend follows.
func (o *Limits) pending(now func() time.Time) (spends []Spend, prior []bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	t := now()
	spends = make([]Spend, 0, len(o.buckets))
	prior = make([]bool, 0, len(o.buckets))
	for owner, b := range o.buckets {
		if b.pending == 0 && len(b.priors) == 0 && t.Sub(b.taken) > syncIdle {
			delete(o.buckets, owner)
			continue
		}
		for _, p := range b.priors {
			o.seq++
			spends = append(spends, Spend{Owner: owner, PerMinute: p.perMinute, N: p.n, Seq: o.seq})
			prior = append(prior, true)
		}
		b.priors = nil
		o.seq++
		spends = append(spends, Spend{Owner: owner, PerMinute: b.perMinute, N: b.pending, Seq: o.seq})
		prior = append(prior, false)
		b.pending = 0
	}
	return spends, prior
}

// settle records what shared answered to spends: on success each bucket
// is set to what its shared one has left, less what was let through here
// meanwhile; on failure (err) the spends are kept to be sent again, and
// every first request waiting for a sync goes on, its bucket counting
// alone.
func (o *Limits) settle(spends []Spend, prior []bool, left []float64, err error, now func() time.Time) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil {
		o.unacked, o.unackedPrior = spends, prior
		for _, b := range o.buckets {
			if b.synced != nil {
				close(b.synced)
				b.synced = nil
			}
		}
		return err
	}
	o.unacked, o.unackedPrior = nil, nil
	t := now()
	for i, s := range spends {
		b := o.buckets[s.Owner]
		if b == nil || prior[i] {
			continue // pruned meanwhile; or the bucket's own spend follows
		}
		b.tokens = min(left[i], float64(b.perMinute)) - float64(b.pending)
		b.last = t
		if b.synced != nil {
			close(b.synced)
			b.synced = nil
		}
	}
	return nil
}

// Share makes o share its buckets through shared with the other Limits
// that use it, from its Run on: every interval (and at once for an owner's
// new bucket) a sync tells shared what was let through here since the
// last one and sets each bucket to what its shared one has left. Take
// still counts in memory; what the others let through reaches this one's
// buckets within an interval. An owner's first request in a while waits
// for the sync it asks for, so a new bucket starts from the shared count.
// Share is called once, before the first Take.
func (o *Limits) Share(shared Shared, every time.Duration, log *slog.Logger) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.kick = make(chan struct{}, 1)
	o.shared, o.every, o.log = shared, every, log
}

// Run syncs the buckets with the shared ones, until ctx ends; it returns
// at once if o does not share them. A failure is logged once until a sync
// succeeds; meanwhile the buckets count alone.
func (o *Limits) Run(ctx context.Context) {
	o.mu.Lock()
	kick, shared := o.kick, o.shared
	o.mu.Unlock()
	if shared == nil {
		return
	}
	defer o.stopSharing()
	tick := time.NewTicker(o.every)
	defer tick.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-kick:
		}
		sctx, cancel := context.WithTimeout(ctx, syncTimeout)
		err := o.sync(sctx, shared, time.Now)
		cancel()
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			o.log.Warn("owners' request counts are not shared; this gateway counts alone until they are", "err", err)
			failing = true
		case err == nil && failing:
			o.log.Info("owners' request counts are shared again")
			failing = false
		}
	}
}

// stopSharing ends the waits for a first sync, and makes the buckets made
// from now on count alone: no sync will come.
func (o *Limits) stopSharing() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.kick = nil
	for _, b := range o.buckets {
		if b.synced != nil {
			close(b.synced)
			b.synced = nil
		}
	}
}
