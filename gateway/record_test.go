package gateway

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/valyala/fasthttp"
)

// fakeRecorder keeps every recorded request.
type fakeRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (r *fakeRecorder) Record(appID string, status int, d time.Duration, method, path, requestID []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d <= 0 {
		r.seen = append(r.seen, "non-positive latency")
	}
	r.seen = append(r.seen, fmt.Sprintf("%s %d %s %s id=%d", appID, status, method, path, len(requestID)))
}

func TestRecorderSeesEveryAppRequest(t *testing.T) {
	var idMu sync.Mutex
	var ids []string
	dial := newUpstream(t, func(ctx *fasthttp.RequestCtx) {
		idMu.Lock()
		ids = append(ids, string(ctx.Request.Header.Peek(HeaderRequestID)))
		idMu.Unlock()
		code, _ := strconv.Atoi(string(ctx.QueryArgs().Peek("status")))
		ctx.SetStatusCode(code)
	})
	rec := &fakeRecorder{}
	h := newHarness(t, &fakePool{addr: "runner"}, options{dial: dial, edit: func(c *Config) { c.Recorder = rec }})
	h.routes.set("demo", "app1", "v1")

	for _, code := range []int{200, 404, 500} {
		// The client's own id is replaced: the gateway's names one request.
		status, _, _ := h.do(t, http.MethodGet, fmt.Sprintf("http://demo.example.test/x?status=%d", code), "",
			http.Header{HeaderRequestID: {"client-chosen"}})
		if status != code {
			t.Errorf("status %d, want %d", status, code)
		}
	}
	h.do(t, http.MethodGet, "http://nope.example.test/", "", nil) // no app: not an app's request

	rec.mu.Lock()
	defer rec.mu.Unlock()
	want := []string{
		"app1 200 GET /x?status=200 id=16",
		"app1 404 GET /x?status=404 id=16",
		"app1 500 GET /x?status=500 id=16",
	}
	if diff := cmp.Diff(want, rec.seen); diff != "" {
		t.Errorf("recorded (-want +got):\n%s", diff)
	}
	hexID := regexp.MustCompile(`^[0-9a-f]{16}$`)
	seen := map[string]bool{}
	for _, id := range ids {
		if !hexID.MatchString(id) || seen[id] {
			t.Errorf("the app saw request id %q; want 16 new hex digits per request (all: %q)", id, ids)
		}
		seen[id] = true
	}
}
