package gateway

import (
	"net/http"
	"strings"
	"testing"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// TestLane sends requests to a runner that speaks the gateway's lane and to
// one that does not (uvicorn's own HTTP only, as a runner of an earlier
// release): both answer every request, a POST included, and only the
// second refuses a frame, once, after which the gateway speaks HTTP to it.
func TestLane(t *testing.T) {
	for _, tt := range []struct {
		name     string
		plain    bool
		refusals int // frames the runner refused, as its log says
	}{
		{"runner with the lane", false, 0},
		{"runner without the lane", true, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool := newPythonPool(t, nil)
			pool.plain = tt.plain
			h := newHarness(t, pool, options{})
			h.routes.set("demo", "app1", "v1")

			status, _, body := h.do(t, http.MethodPost, "http://demo.example.test/items", `{"a":1}`,
				http.Header{"Content-Type": {"application/json"}})
			if status != http.StatusOK || body != `{"received":{"a":1},"version":"v1"}` {
				t.Errorf("POST /items: %d %q", status, body)
			}
			for range 3 {
				if status, _, body := h.do(t, http.MethodGet, "http://demo.example.test/echo?q=1", "", nil); status != http.StatusOK || !strings.Contains(body, `"query":"q=1"`) {
					t.Errorf("GET /echo: %d %q", status, body)
				}
			}
			e := h.g.runners.serving(&v1.Route{AppId: "app1", Version: "v1", Entrypoint: "main:app"})
			if e == nil || e.httpOnly.Load() != tt.plain {
				t.Errorf("runner entry %v, want it in service with httpOnly %v", e, tt.plain)
			}
			u := pool.runner(0)
			u.kill()
			if n := strings.Count(u.stderr.String(), "Invalid HTTP request received."); n != tt.refusals {
				t.Errorf("the runner refused %d requests, want %d; its log:\n%s", n, tt.refusals, u.stderr)
			}
		})
	}
}
