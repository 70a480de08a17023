package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// dialCounter dials runners over TCP and counts the connections per
// address.
type dialCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (d *dialCounter) dial(addr string) (net.Conn, error) {
	d.mu.Lock()
	if d.n == nil {
		d.n = map[string]int{}
	}
	d.n[addr]++
	d.mu.Unlock()
	return net.Dial("tcp", addr)
}

func (d *dialCounter) total() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	sum := 0
	for _, n := range d.n {
		sum += n
	}
	return sum
}

func TestKeepAliveAndPipelining(t *testing.T) {
	t.Parallel()
	dials := &dialCounter{}
	pool := newPythonPool(t, nil)
	// Every request watches its client (watchAfter 1ns), so a request that
	// arrives while another is served is read by the watch and must be
	// replayed to the server intact.
	h := newHarness(t, pool, options{dial: dials.dial, watchAfter: time.Nanosecond})
	h.routes.set("alpha", "app1", "v1")
	h.routes.set("beta", "app2", "v2")

	c, err := h.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)

	// echo reads one /echo response and says which app version answered
	// which query.
	type echo struct{ Version, Query string }
	read := func(raw string) echo {
		t.Helper()
		resp, body := readResponse(t, br, raw)
		var e echo
		if err := json.Unmarshal([]byte(body), &e); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, body %q (%v)", resp.StatusCode, body, err)
		}
		return e
	}
	reqA := "GET /echo?n=1 HTTP/1.1\r\nHost: alpha.example.test\r\n\r\n"
	reqB := "GET /echo?n=2 HTTP/1.1\r\nHost: beta.example.test\r\n\r\n"

	t.Run("pipelined requests for two apps", func(t *testing.T) {
		if _, err := c.Write([]byte(reqA + reqB)); err != nil {
			t.Fatal(err)
		}
		got := []echo{read(reqA), read(reqB)}
		want := []echo{{"v1", "n=1"}, {"v2", "n=2"}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("responses (-want +got):\n%s", diff)
		}
	})

	t.Run("keep-alive to client and runners", func(t *testing.T) {
		// One round first: a pooled runner connection idle for longer than
		// runnerIdleConn (a slow cold start of the other app) is closed.
		for _, raw := range []string{reqA, reqB} {
			if _, err := c.Write([]byte(raw)); err != nil {
				t.Fatal(err)
			}
			read(raw)
		}
		before := dials.total()
		var got []echo
		for range 3 {
			if _, err := c.Write([]byte(reqA)); err != nil {
				t.Fatal(err)
			}
			got = append(got, read(reqA))
			if _, err := c.Write([]byte(reqB)); err != nil {
				t.Fatal(err)
			}
			got = append(got, read(reqB))
		}
		want := []echo{{"v1", "n=1"}, {"v2", "n=2"}, {"v1", "n=1"}, {"v2", "n=2"}, {"v1", "n=1"}, {"v2", "n=2"}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("responses (-want +got):\n%s", diff)
		}
		if n := dials.total() - before; n != 0 {
			t.Errorf("%d new runner connections for 6 sequential requests, want 0 (pooled)", n)
		}
	})

	t.Run("request pipelined behind a slow one", func(t *testing.T) {
		// alpha's /block answers only after /unblock; beta's request is
		// written while it waits, so the watch on this connection reads it.
		reqBlock := "GET /block HTTP/1.1\r\nHost: alpha.example.test\r\n\r\n"
		if _, err := c.Write([]byte(reqBlock)); err != nil {
			t.Fatal(err)
		}
		alpha := pool.byVersion(t, "v1")
		if err := callOK(context.Background(), http.MethodGet, "http://"+alpha.Addr()+"/arrived"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte(reqB)); err != nil {
			t.Fatal(err)
		}
		if err := callOK(context.Background(), http.MethodPost, "http://"+alpha.Addr()+"/unblock"); err != nil {
			t.Fatal(err)
		}
		resp, body := readResponse(t, br, reqBlock)
		if resp.StatusCode != http.StatusOK || body != `{"version":"v1"}` {
			t.Errorf("/block: %d %q", resp.StatusCode, body)
		}
		if got := read(reqB); got != (echo{"v2", "n=2"}) {
			t.Errorf("pipelined request: %+v, want v2 n=2", got)
		}
	})
}
