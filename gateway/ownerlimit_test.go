package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestOwnerLimitsBucket: a minute's worth at once, then the limit's pace;
// owners apart; no limit, no count.
func TestOwnerLimitsBucket(t *testing.T) {
	var o ownerLimits
	t0 := time.Unix(1_700_000_000, 0)
	take := func(owner string, perMinute int32, at time.Duration) error {
		return o.take(owner, perMinute, t0.Add(at))
	}
	for i := range 60 {
		if err := take("u1", 60, 0); err != nil {
			t.Fatalf("request %d of the first minute's worth: %v", i+1, err)
		}
	}
	var over *overLimit
	if err := take("u1", 60, 0); !errors.As(err, &over) || over.perMinute != 60 || over.retry != time.Second {
		t.Fatalf("the 61st at once: %v, want over the limit, next in 1s", err)
	}
	if err := take("u1", 60, 500*time.Millisecond); !errors.As(err, &over) || over.retry != 500*time.Millisecond {
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

// TestOwnerRequestLimit sends requests to a real app whose owner may have
// three a minute: the fourth is answered 429, saying when to retry, the
// owner's other app shares the limit, and another owner's app does not.
func TestOwnerRequestLimit(t *testing.T) {
	pool := newPythonPool(t, nil)
	h := newHarness(t, pool, options{})
	for _, slug := range []string{"demo", "demo2", "other"} {
		h.routes.set(slug, "app-"+slug, "v1")
	}
	h.routes.setOwner("demo", "u1", 3)
	h.routes.setOwner("demo2", "u1", 3)
	h.routes.setOwner("other", "u2", 0)
	get := func(slug string) (int, http.Header, string) {
		return h.do(t, http.MethodGet, "http://"+slug+".example.test/healthz", "", http.Header{"Accept": {"application/json"}})
	}
	for i := range 3 {
		if status, _, body := get("demo"); status != http.StatusOK {
			t.Fatalf("request %d: %d %s, want 200", i+1, status, body)
		}
	}
	for _, slug := range []string{"demo", "demo2"} {
		status, hdr, body := get(slug)
		var got struct{ Error string }
		_ = json.Unmarshal([]byte(body), &got)
		if status != http.StatusTooManyRequests || !strings.Contains(got.Error, `has had as many requests as its owner's plan allows (3 a minute). Retry in `) {
			t.Errorf("%s over the limit: %d %s, want 429 saying why", slug, status, body)
		}
		if n, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || n < 1 || n > 20 {
			t.Errorf("%s over the limit: Retry-After %q, want 1-20 seconds (a request earned every 20)", slug, hdr.Get("Retry-After"))
		}
	}
	for i := range 5 {
		if status, _, body := get("other"); status != http.StatusOK {
			t.Fatalf("another owner's app, request %d: %d %s", i+1, status, body)
		}
	}
}

// BenchmarkOwnerLimitTake is what a request of an app whose owner has a
// request limit pays for it.
func BenchmarkOwnerLimitTake(b *testing.B) {
	var o ownerLimits
	for b.Loop() {
		if err := o.take("u1", 1<<30, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}
