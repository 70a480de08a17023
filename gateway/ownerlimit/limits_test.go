package ownerlimit

import (
	"errors"
	"testing"
	"time"
)

// TestOwnerLimitsBucket: a minute's worth at once, then the limit's pace;
// owners apart; no limit, no count.
func TestOwnerLimitsBucket(t *testing.T) {
	var o Limits
	t0 := time.Unix(1_700_000_000, 0)
	take := func(owner string, perMinute int32, at time.Duration) error {
		return o.Take(owner, perMinute, t0.Add(at))
	}
	for i := range 60 {
		if err := take("u1", 60, 0); err != nil {
			t.Fatalf("request %d of the first minute's worth: %v", i+1, err)
		}
	}
	var over *Exceeded
	if err := take("u1", 60, 0); !errors.As(err, &over) || over.PerMinute != 60 || over.Retry != time.Second {
		t.Fatalf("the 61st at once: %v, want over the limit, next in 1s", err)
	}
	if err := take("u1", 60, 500*time.Millisecond); !errors.As(err, &over) || over.Retry != 500*time.Millisecond {
		t.Fatalf("half a second on: %v, want next in 0.5s", err)
	}
	if err := take("u1", 60, time.Second); err != nil {
		t.Fatalf("a second on (one request earned): %v", err)
	}
	if err := take("u1", 60, time.Second); err == nil {
		t.Fatal("a second request in that second was let through")
	}
	if err := take("u2", 60, time.Second); err != nil {
		t.Fatalf("another owner: %v", err)
	}
	for range 1000 {
		if err := take("u3", 0, 0); err != nil {
			t.Fatalf("no limit: %v", err)
		}
	}
	// A minute idle refills the whole bucket, which may then be forgotten.
	o.prune(t0.Add(2 * time.Minute))
	if len(o.buckets) != 0 {
		t.Errorf("%d buckets kept after two idle minutes, want none", len(o.buckets))
	}
	for i := range 60 {
		if err := take("u1", 60, 2*time.Minute); err != nil {
			t.Fatalf("request %d after two idle minutes: %v", i+1, err)
		}
	}
}

// BenchmarkTake is what a request of an app whose owner has a
// request limit pays for it.
func BenchmarkTake(b *testing.B) {
	var o Limits
	for b.Loop() {
		if err := o.Take("u1", 1<<30, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}
