package ownerlimit

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gofastapi/gofastapi/controlplane/embedded"
	"github.com/gofastapi/gofastapi/controlplane/embedded/embeddedtest"
)

// startShared starts a real redis-server and returns a client of it and
// n Limits sharing their buckets through it, each running until the test
// ends. Their interval is an hour, so only the syncs the test makes (and
// those a new bucket asks for) happen.
func startShared(t *testing.T, n int) (*embedded.Redis, *redis.Client, []*Limits) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rs, rdb := embeddedtest.Redis(t)
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	ls := make([]*Limits, n)
	for i := range ls {
		ls[i] = &Limits{}
		ls[i].Share(NewRedis(rdb), time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	go func() {
		defer close(done)
		for _, l := range ls[1:] {
			go l.Run(ctx)
		}
		ls[0].Run(ctx)
	}()
	return rs, rdb, ls
}

// syncNow makes l spend what it let through and learn what is left.
func syncNow(t *testing.T, l *Limits) {
	t.Helper()
	if err := l.sync(context.Background(), l.shared, time.Now); err != nil {
		t.Fatal(err)
	}
}

// sharedTokens reads what owner's shared bucket holds.
func sharedTokens(t *testing.T, rdb *redis.Client, owner string) float64 {
	t.Helper()
	s, err := rdb.HGet(context.Background(), Key(owner), "tokens").Result()
	if err != nil {
		t.Fatal(err)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// takeN takes n requests of owner from l, each of which must pass.
func takeN(t *testing.T, l *Limits, owner string, perMinute int32, n int) {
	t.Helper()
	for i := range n {
		if err := l.Take(owner, perMinute, time.Now()); err != nil {
			t.Fatalf("%s: request %d of %d: %v", owner, i+1, n, err)
		}
	}
}

// TestSharedBuckets: two gateways' Limits sharing one Redis let through
// an owner's limit together, not each of them; a new bucket starts from
// the shared count; what they let through past it is owed; other owners
// are apart.
func TestSharedBuckets(t *testing.T) {
	_, rdb, ls := startShared(t, 2)
	a, b := ls[0], ls[1]

	takeN(t, a, "u1", 6, 6)
	var over *Exceeded
	if err := a.Take("u1", 6, time.Now()); !errors.As(err, &over) {
		t.Fatalf("the 7th request at the first gateway: %v, want over the limit", err)
	}
	syncNow(t, a)
	if got := sharedTokens(t, rdb, "u1"); got < 0 || got >= 1 {
		t.Fatalf("the shared bucket holds %v after 6 of 6 requests, want less than one", got)
	}
	// The second gateway has not served u1: its new bucket starts from the
	// shared count, not a full one.
	if err := b.Take("u1", 6, time.Now()); !errors.As(err, &over) || over.PerMinute != 6 || over.Retry <= 9*time.Second || over.Retry > 10*time.Second {
		t.Fatalf("the first request at the second gateway: %v, want over the limit, next in 9-10s (one request earned every 10s)", err)
	}
	takeN(t, b, "u2", 6, 6) // another owner

	// Between syncs each gateway lets through what it alone still sees:
	// together they pass the limit, and the excess is owed.
	takeN(t, a, "u3", 2, 1) // a's new bucket starts from the shared 2
	takeN(t, b, "u3", 2, 1) // so does b's: a has not spent its request yet
	takeN(t, a, "u3", 2, 1) // a still sees 1
	syncNow(t, a)
	syncNow(t, b)
	syncNow(t, a) // a learns of b's request
	if got := sharedTokens(t, rdb, "u3"); got < -1 || got >= -0.9 {
		t.Fatalf("the shared bucket holds %v after 3 requests of a limit of 2, want -1 (owed)", got)
	}
	for _, l := range ls {
		// Two requests to earn back at 30s each: more than one would need.
		if err := l.Take("u3", 2, time.Now()); !errors.As(err, &over) || over.Retry <= 59*time.Second {
			t.Fatalf("after the excess: %v, want over the limit, next in about 60s", err)
		}
	}
	ttl, err := rdb.PTTL(context.Background(), Key("u3")).Result()
	if err != nil || ttl <= time.Minute || ttl > expiry {
		t.Errorf("the shared bucket expires in %v (%v), want in 1-2 minutes", ttl, err)
	}
}

// TestSharedBucketsScriptLost: Redis forgetting the script (a restart, a
// SCRIPT FLUSH) costs a reload, and each spend still counts once.
func TestSharedBucketsScriptLost(t *testing.T) {
	_, rdb, ls := startShared(t, 1)
	a := ls[0]
	takeN(t, a, "u1", 10, 3)
	if err := rdb.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	takeN(t, a, "u2", 10, 1) // a new bucket: synced with the script reloaded
	syncNow(t, a)
	for owner, want := range map[string]float64{"u1": 7, "u2": 9} {
		if got := sharedTokens(t, rdb, owner); got < want || got >= want+0.1 {
			t.Errorf("%s's shared bucket holds %v, want %v", owner, got, want)
		}
	}
}

// TestSharedBucketsWithoutRedis: with Redis gone, an owner's first request
// waits for one failed sync, then each gateway counts alone; once Run
// ends nothing waits.
func TestSharedBucketsWithoutRedis(t *testing.T) {
	rs, _, ls := startShared(t, 1)
	a := ls[0]
	rs.Stop()
	takeN(t, a, "u1", 2, 2)
	var over *Exceeded
	if err := a.Take("u1", 2, time.Now()); !errors.As(err, &over) {
		t.Fatalf("the 3rd request of 2 counted alone: %v, want over the limit", err)
	}

	l := &Limits{}
	l.Share(NewRedis(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})), time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l.Run(ctx)
	takeN(t, l, "u1", 2, 2) // no sync will come: no wait
}

// TestSharedBucketsDeleted: a sync that spends nothing does not make a
// bucket, so once a deleted user's bucket is gone, the gateways' syncs of
// what they remember of it do not bring it back.
func TestSharedBucketsDeleted(t *testing.T) {
	_, rdb, ls := startShared(t, 1)
	a := ls[0]
	ctx := context.Background()
	exists := func() bool { return rdb.Exists(ctx, Key("u1")).Val() == 1 }
	takeN(t, a, "u1", 10, 1) // its first sync spent nothing
	if exists() {
		t.Fatal("a sync that spent nothing made the bucket")
	}
	syncNow(t, a)
	if !exists() {
		t.Fatal("a spend did not make the bucket")
	}
	r := NewRedis(rdb)
	if got, err := r.DeleteUserData(ctx, "u1"); err != nil || got["request counts"] != 1 || len(got) != 1 {
		t.Fatalf("DeleteUserData = %v, %v; want request counts: 1", got, err)
	}
	syncNow(t, a) // a still remembers u1's bucket
	if exists() {
		t.Error("a sync after the deletion made the bucket again")
	}
	if got, err := r.DeleteUserData(ctx, "u1"); err != nil || len(got) != 0 {
		t.Errorf("DeleteUserData again = %v, %v; want nothing", got, err)
	}
}

// TestSharedBucketsLimitChanged: requests let through before an owner's
// limit changed are spent from the shared bucket at the old size, as the
// gateway's own bucket took them, so a lower limit does not make the owner
// owe them.
func TestSharedBucketsLimitChanged(t *testing.T) {
	_, rdb, ls := startShared(t, 1)
	a := ls[0]
	takeN(t, a, "u1", 3000, 1)
	takeN(t, a, "u1", 3, 3) // the limit is now 3: the bucket keeps 3 of its 2999
	var over *Exceeded
	if err := a.Take("u1", 3, time.Now()); !errors.As(err, &over) || over.Retry > 20*time.Second {
		t.Fatalf("the 4th request under the new limit: %v, want over the limit, next within 20s", err)
	}
	syncNow(t, a)
	if got := sharedTokens(t, rdb, "u1"); got < 0 || got >= 1 {
		t.Errorf("the shared bucket holds %v, want less than 1 and nothing owed", got)
	}
	if err := a.Take("u1", 3, time.Now()); !errors.As(err, &over) || over.Retry > 20*time.Second {
		t.Errorf("after the sync: %v, want over the limit, next within 20s", err)
	}
}

// TestSharedBucketsLimitChangedTwice: requests let through under each of
// two earlier limits within one sync interval are spent at their own
// limit's size. 60 requests at 60 a minute empty the bucket, so after the
// limit drops again to 3 nothing is left; spent at the first limit's size
// (3000), they would leave 3 more for the owner.
func TestSharedBucketsLimitChangedTwice(t *testing.T) {
	_, rdb, ls := startShared(t, 1)
	a := ls[0]
	takeN(t, a, "u1", 3000, 1)
	takeN(t, a, "u1", 60, 60) // the bucket keeps 60 of its 2999, and they all go
	var over *Exceeded
	if err := a.Take("u1", 3, time.Now()); !errors.As(err, &over) {
		t.Fatalf("the limit now 3, with the bucket all but empty: %v, want over the limit", err)
	}
	syncNow(t, a)
	if got := sharedTokens(t, rdb, "u1"); got >= 1 {
		t.Errorf("the shared bucket holds %v, want less than 1: the 60 were spent from a bucket of 60", got)
	}
	if err := a.Take("u1", 3, time.Now()); !errors.As(err, &over) {
		t.Errorf("after the sync: %v, want over the limit", err)
	}
}

// lostReply is Shared whose Spend, when lose is set, reaches Redis, which
// takes the spends, but whose reply is lost: the sync fails as if Redis
// had not.
type lostReply struct {
	Shared
	lose bool
}

func (l *lostReply) Spend(ctx context.Context, spends []Spend) ([]float64, error) {
	left, err := l.Shared.Spend(ctx, spends)
	if err == nil && l.lose {
		l.lose = false
		return nil, errors.New("i/o timeout (the reply was lost)")
	}
	return left, err
}

// TestSharedBucketsReplyLost: a sync that failed after Redis took its
// spends sends them again, and Redis takes them once: the requests are
// counted once, and those let through meanwhile after them.
func TestSharedBucketsReplyLost(t *testing.T) {
	_, rdb := embeddedtest.Redis(t)
	l := &Limits{}
	shared := &lostReply{Shared: NewRedis(rdb)}
	l.Share(shared, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	// Not running: the syncs are the test's, this one the sync the first
	// request asks for.
	go func() {
		<-l.kick
		_ = l.sync(ctx, shared, time.Now)
	}()
	takeN(t, l, "u1", 10, 3)

	shared.lose = true
	if err := l.sync(ctx, shared, time.Now); err == nil {
		t.Fatal("the sync whose reply was lost succeeded")
	}
	if got := sharedTokens(t, rdb, "u1"); got < 7 || got >= 7.1 {
		t.Fatalf("after the lost reply the shared bucket holds %v, want 7: Redis took the 3 requests", got)
	}
	takeN(t, l, "u1", 10, 2)
	if err := l.sync(ctx, shared, time.Now); err != nil {
		t.Fatal(err)
	}
	if got := sharedTokens(t, rdb, "u1"); got < 5 || got >= 5.1 {
		t.Errorf("after the next sync the shared bucket holds %v, want 5: the 3 sent again taken once, then the 2", got)
	}
}
