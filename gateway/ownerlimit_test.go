package gateway

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

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
