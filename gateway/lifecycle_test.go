package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

func TestStoppedRunnerIsReplaced(t *testing.T) {
	pool := newPythonPool(t, nil)
	h := newHarness(t, pool, options{})
	h.routes.set("demo", "app1", "v1")

	h.getJSON(t, "http://demo.example.test/echo")
	pool.runner(0).kill()
	h.getJSON(t, "http://demo.example.test/echo")
	if got := pool.claimCount(); got != 2 {
		t.Errorf("%d claims, want 2", got)
	}
}

func TestInvalidateServesNewVersion(t *testing.T) {
	pool := newPythonPool(t, nil)
	h := newHarness(t, pool, options{})
	h.routes.set("demo", "app1", "v1")
	if v := h.getJSON(t, "http://demo.example.test/echo")["version"]; v != "v1" {
		t.Fatalf("version %v, want v1", v)
	}
	old := pool.runner(0)

	// A request in flight on v1 across the redeploy.
	blocked := make(chan map[string]any, 1)
	go func() {
		resp, err := h.client.Get("http://demo.example.test/block")
		if err != nil {
			blocked <- map[string]any{"error": err.Error()}
			return
		}
		defer resp.Body.Close()
		var v map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		blocked <- v
	}()
	if err := callOK(context.Background(), http.MethodGet, "http://"+old.Addr()+"/arrived"); err != nil {
		t.Fatal(err)
	}

	h.routes.set("demo", "app1", "v2")
	h.g.Invalidate("demo")
	if v := h.getJSON(t, "http://demo.example.test/echo")["version"]; v != "v2" {
		t.Errorf("after Invalidate: version %v, want v2", v)
	}
	if got := pool.claimCount(); got != 2 {
		t.Errorf("%d claims, want 2", got)
	}
	if old.wasReleased() {
		t.Error("old runner released while a request was in flight on it")
	}

	if err := callOK(context.Background(), http.MethodPost, "http://"+old.Addr()+"/unblock"); err != nil {
		t.Fatal(err)
	}
	if v := <-blocked; v["version"] != "v1" {
		t.Errorf("in-flight request: %v, want version v1", v)
	}
	wait(t, old.released, "old runner released")
	if pool.runner(1).wasReleased() {
		t.Error("new runner released")
	}
}

// TestFirstByteOnlyWhenARequestWaited checks that a start ahead of
// requests (the new version's, after a redeploy of an app in use) reports
// no first byte, at once and not for the first request it serves later,
// while a start a request waited for reports one.
func TestFirstByteOnlyWhenARequestWaited(t *testing.T) {
	pool := newPythonPool(t, nil)
	h := newHarness(t, pool, options{})
	h.routes.set("demo", "app1", "v1")
	h.getJSON(t, "http://demo.example.test/echo")
	old := pool.runner(0)
	if got := old.answers.get(); len(got) != 1 || got[0] <= 0 {
		t.Errorf("v1 (a request waited): first bytes %v, want one", got)
	}

	h.routes.set("demo", "app1", "v2")
	h.g.Invalidate("demo")
	// The new version's runner is in place once the old one is released;
	// its start is recorded without a request.
	wait(t, old.released, "old runner released")
	wait(t, pool.runner(1).answers.reported(), "the start ahead of requests recorded")
	if got := pool.runner(1).answers.get(); len(got) != 1 || got[0] != 0 {
		t.Errorf("v2 (started ahead of requests), before any request: first bytes %v, want one report, with none", got)
	}
	if v := h.getJSON(t, "http://demo.example.test/echo")["version"]; v != "v2" {
		t.Fatalf("after Invalidate: version %v, want v2", v)
	}
	if got := pool.claimCount(); got != 2 {
		t.Fatalf("%d claims, want 2", got)
	}
	if got := pool.runner(1).answers.get(); len(got) != 1 || got[0] != 0 {
		t.Errorf("v2 (started ahead of requests): first bytes %v, want only the report with none", got)
	}
}

func TestInvalidateDeletedApp(t *testing.T) {
	pool := newPythonPool(t, nil)
	h := newHarness(t, pool, options{})
	h.routes.set("demo", "app1", "v1")
	h.getJSON(t, "http://demo.example.test/echo")

	h.routes.set("demo", "app1", "")
	h.g.Invalidate("demo")
	wait(t, pool.runner(0).released, "runner of deleted app released")
	if status, _, _ := h.do(t, http.MethodGet, "http://demo.example.test/echo", "", nil); status != http.StatusNotFound {
		t.Errorf("deleted app: status %d, want 404", status)
	}
}

func TestShutdownEndsLongLivedExchanges(t *testing.T) {
	t.Parallel()
	h, pool := newEdgeHarness(t, options{})

	ws := dialWS(t, h, "/ws")
	defer ws.Close()
	var msg string
	if err := websocket.Message.Receive(ws, &msg); err != nil || msg != "hello" {
		t.Fatalf("greeting %q %v", msg, err)
	}
	resp, err := h.client.Get("http://demo.example.test/feed")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := readEvents(resp.Body)
	var ev string
	wait(t, chanOf(events, &ev), "first event")

	// The event stream never ends on its own, so Shutdown waits for it
	// until ctx ends, then cuts it off; the WebSocket closes at once.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := h.g.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want the deadline (a stream was still open)", err)
	}
	if err := websocket.Message.Receive(ws, &msg); err == nil {
		t.Errorf("WebSocket still open after Shutdown: got %q", msg)
	}
	wait(t, chanOf(events, &ev), "event stream cut off")
	if ev != "" {
		t.Errorf("event after Shutdown: %q", ev)
	}
	wait(t, pool.byVersion(t, "edge").released, "runner released")
}
