// Package pooltest is one behaviour suite for every pool backend: warm up,
// claim, specialize, serve, idle reap, refill, limits, a runner's crash and
// a restart of the pool manager. Each backend's tests call Run with a
// Harness for real runners (local processes, pods on a real API server).
package pooltest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gofastapi/gofastapi/proto/appaddr"

	"connectrpc.com/connect"
	"github.com/redis/go-redis/v9"

	"github.com/gofastapi/gofastapi/controlplane/embedded"
	"github.com/gofastapi/gofastapi/pool"
	"github.com/gofastapi/gofastapi/proto/bundle"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// WaitLimit only keeps a broken test from hanging; nothing is timed against it.
const WaitLimit = 90 * time.Second

// Harness gives the suite one backend's real runners.
type Harness struct {
	// Redis stores the bundles the runners fetch.
	Redis *redis.Client
	// NewBackend returns a backend; the suite calls it again to restart
	// the pool manager, after Detach of the old one.
	NewBackend func(t *testing.T) pool.Backend
	// Detach, if set, is called on a backend before its pool is closed for
	// a restart of the manager: its runners must outlive the pool.
	Detach func(b pool.Backend)
	// Adopts says whether a restarted manager takes over the runners that
	// serve apps (Kubernetes) instead of starting anew (local processes,
	// which end with their manager).
	Adopts bool
	// Crash kills the runner of a claimed app as a crash would.
	Crash func(t *testing.T, r pool.RunnerInfo)
	// KnowsAddrEarly says whether a warm runner's app address is known
	// before it is specialized (local processes), so that ClaimAhead calls
	// picked; otherwise (pods, whose address comes with Specialize's
	// answer) it need not.
	KnowsAddrEarly bool
}

// StartRedis starts a redis-server for the suite and returns an admin
// client and the URL of a user that may only read bundles.
func StartRedis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
	defer cancel()
	rs, err := embedded.StartRedis(ctx, "redis-server")
	if err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(rs.Stop)
	opt, err := redis.ParseURL(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	admin := redis.NewClient(opt)
	t.Cleanup(func() { admin.Close() })
	runnerURL, err := embedded.RunnerUser(ctx, admin, rs.URL())
	if err != nil {
		t.Fatalf("create the runners' read-only Redis user: %v", err)
	}
	return admin, runnerURL
}

// Events records what the pool logs.
type Events struct {
	mu    sync.Mutex
	lines []string
	added chan struct{}
}

func (e *Events) log(appID string, t time.Time, stream, text string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lines = append(e.lines, appID+" "+stream+" "+text)
	if e.added != nil {
		close(e.added)
	}
	e.added = make(chan struct{})
}

// Wait blocks until a line containing sub was logged, or fails the test.
func (e *Events) Wait(t *testing.T, sub string) {
	t.Helper()
	timeout := time.After(WaitLimit)
	for {
		e.mu.Lock()
		if e.added == nil {
			e.added = make(chan struct{})
		}
		ch := e.added
		for _, l := range e.lines {
			if strings.Contains(l, sub) {
				e.mu.Unlock()
				return
			}
		}
		lines := append([]string(nil), e.lines...)
		e.mu.Unlock()
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("no %q in the pool's events %q", sub, lines)
		}
	}
}

// Options are the pool settings of one test.
type Options struct {
	Warm, Max int
	Idle      time.Duration
}

// NewPool starts a pool over b and closes it when the test ends.
func NewPool(t *testing.T, b pool.Backend, o Options) (*pool.Pool, *Events) {
	t.Helper()
	if o.Idle == 0 {
		o.Idle = time.Hour
	}
	ev := &Events{}
	p, err := pool.New(pool.Config{
		Backend: b, Warm: o.Warm, Max: o.Max, IdleTimeout: o.Idle,
		StartTimeout: WaitLimit, SpecializeTimeout: 30 * time.Second, StopGrace: 5 * time.Second,
		Log: ev.log, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("pool.New: %v", err)
	}
	t.Cleanup(p.Close)
	return p, ev
}

// App is a deployed app version.
type App struct {
	ID, Version string
}

// Deploy stores a FastAPI app answering GET / with {"app": id} and returns
// its version.
func Deploy(t testing.TB, rdb *redis.Client, id, main string) App {
	t.Helper()
	if main == "" {
		main = fmt.Sprintf(`from fastapi import FastAPI
app = FastAPI()

@app.get("/")
def root():
    return {"app": %q}
`, id)
	}
	files := []bundle.File{{Name: "main.py", Content: []byte(main)}}
	version := bundle.Hash(files)
	data, err := bundle.Encode(files)
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(context.Background(), bundle.Key(version), data, 0).Err(); err != nil {
		t.Fatalf("store bundle: %v", err)
	}
	return App{ID: id, Version: version}
}

// Request is the SpecializeRequest for a.
func (a App) Request() *v1.SpecializeRequest {
	return &v1.SpecializeRequest{AppId: a.ID, Slug: a.ID, Version: a.Version, Entrypoint: "main.py", ServeKey: a.ServeKey()}
}

// ServeKey is the serve key of a's Request (see pool.ServeKey), which a
// pool that takes over a's runner must keep.
func (a App) ServeKey() string { return a.Version + "+entry=main.py" }

// Claim claims a runner for a or fails the test.
func Claim(t *testing.T, p *pool.Pool, a App) *pool.Runner {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
	defer cancel()
	r, err := p.Claim(ctx, a.Request())
	if err != nil {
		t.Fatalf("Claim(%s): %v", a.ID, err)
	}
	return r
}

// claimAhead claims a runner for a with ClaimAhead, or fails the test.
func claimAhead(t *testing.T, p *pool.Pool, a App, picked func(addr string)) *pool.Runner {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
	defer cancel()
	r, err := p.ClaimAhead(ctx, a.Request(), picked)
	if err != nil {
		t.Fatalf("ClaimAhead(%s): %v", a.ID, err)
	}
	return r
}

// aheadRequest is a GET / written to an app's address before the app
// served.
type aheadRequest struct {
	addr string
	conn net.Conn
}

// sendGet connects to addr and writes GET / on the connection, without
// waiting for an answer.
func sendGet(t *testing.T, addr string) *aheadRequest {
	t.Helper()
	conn, err := appaddr.Dial(context.Background(), addr)
	if err != nil {
		t.Fatalf("connect to the picked runner at %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatalf("send to the picked runner at %s: %v", addr, err)
	}
	return &aheadRequest{addr: addr, conn: conn}
}

// answer reads everything the app sent back until it closed the
// connection; "" when it closed it (or reset it) without a byte.
func (r *aheadRequest) answer(t *testing.T) string {
	t.Helper()
	if err := r.conn.SetReadDeadline(time.Now().Add(WaitLimit)); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r.conn)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read the answer from %s: %v", r.addr, err)
	}
	return string(b)
}

// Get fetches / from the app at addr and checks that app id answers.
func Get(t *testing.T, addr, id string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return appaddr.Dial(ctx, addr) },
	}}
	resp, err := c.Get("http://app/")
	if err != nil {
		t.Fatalf("GET %s: %v", addr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if want := fmt.Sprintf(`{"app":%q}`, id); resp.StatusCode != 200 || string(body) != want {
		t.Fatalf("GET %s = %d %s, want 200 %s", addr, resp.StatusCode, body, want)
	}
}

func waitDone(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(WaitLimit):
		t.Fatalf("%s did not happen", what)
	}
}

func waitWarm(t *testing.T, p *pool.Pool, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
	defer cancel()
	if err := p.WaitWarm(ctx, n); err != nil {
		t.Fatalf("WaitWarm(%d): %v (stats %+v)", n, err, p.Stats())
	}
}

func claimedInfo(t *testing.T, p *pool.Pool, appID string) pool.RunnerInfo {
	t.Helper()
	_, claimed := p.Runners()
	for _, r := range claimed {
		if r.AppID == appID {
			return r
		}
	}
	t.Fatalf("no runner serves %s: %+v", appID, claimed)
	return pool.RunnerInfo{}
}

// Run runs the suite against h.
func Run(t *testing.T, h Harness) {
	t.Run("WarmClaimServeRefill", func(t *testing.T) {
		p, ev := NewPool(t, h.NewBackend(t), Options{Warm: 2, Max: 4})
		waitWarm(t, p, 2)
		a := Deploy(t, h.Redis, "hello", "")
		r := Claim(t, p, a)
		Get(t, r.Addr(), "hello")
		if s := p.Stats(); s.Claimed != 1 {
			t.Errorf("Stats after a claim = %+v, want 1 claimed", s)
		}
		ev.Wait(t, "hello platform cold start")
		// The claimed runner's place in the warm set is filled again.
		waitWarm(t, p, 2)
		// A released runner is destroyed, never reused.
		addr := r.Addr()
		r.Release()
		waitDone(t, r.Done(), "release")
		r2 := Claim(t, p, a)
		if r2.Addr() == addr {
			t.Errorf("a released runner (%s) was given out again", addr)
		}
		Get(t, r2.Addr(), "hello")
	})

	t.Run("BrokenApp", func(t *testing.T) {
		p, ev := NewPool(t, h.NewBackend(t), Options{Warm: 1, Max: 2})
		a := Deploy(t, h.Redis, "broken", "import nosuchmodule_xyz\n")
		ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
		defer cancel()
		_, err := p.Claim(ctx, a.Request())
		if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "nosuchmodule_xyz") {
			t.Fatalf("Claim of a broken app: %v, want FailedPrecondition naming the missing module", err)
		}
		ev.Wait(t, "broken platform start failed")
		// The runner that failed is gone; the pool is whole again.
		waitWarm(t, p, 1)
		ok := Deploy(t, h.Redis, "fine", "")
		Get(t, Claim(t, p, ok).Addr(), "fine")
	})

	t.Run("SendAhead", func(t *testing.T) {
		p, _ := NewPool(t, h.NewBackend(t), Options{Warm: 1, Max: 3})
		waitWarm(t, p, 1)
		// A request sent as soon as the runner is picked, before it
		// serves, is answered by the app once it does.
		a := Deploy(t, h.Redis, "early", "")
		var sent *aheadRequest
		r := claimAhead(t, p, a, func(addr string) { sent = sendGet(t, addr) })
		if sent == nil {
			if h.KnowsAddrEarly {
				t.Fatal("ClaimAhead never called picked")
			}
			return
		}
		if sent.addr != r.Addr() {
			t.Errorf("picked %s, but the claimed runner is at %s", sent.addr, r.Addr())
		}
		if got, want := sent.answer(t), fmt.Sprintf(`{"app":%q}`, a.ID); !strings.HasPrefix(got, "HTTP/1.1 200") || !strings.HasSuffix(got, want) {
			t.Errorf("answer to the request sent ahead:\n%s\nwant 200 and %s", got, want)
		}

		// Sent ahead of a start that fails, it is never answered.
		waitWarm(t, p, 1)
		broken := Deploy(t, h.Redis, "early-broken", "import nosuchmodule_xyz\n")
		ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
		defer cancel()
		sent = nil
		if _, err := p.ClaimAhead(ctx, broken.Request(), func(addr string) { sent = sendGet(t, addr) }); connect.CodeOf(err) != connect.CodeFailedPrecondition {
			t.Fatalf("Claim of a broken app: %v, want FailedPrecondition", err)
		}
		if got := sent.answer(t); got != "" {
			t.Errorf("a request sent ahead of a failed start was answered:\n%s", got)
		}
	})

	t.Run("IdleReap", func(t *testing.T) {
		p, ev := NewPool(t, h.NewBackend(t), Options{Warm: 1, Max: 2, Idle: 500 * time.Millisecond})
		a := Deploy(t, h.Redis, "sleepy", "")
		r := Claim(t, p, a)
		Get(t, r.Addr(), "sleepy")
		waitDone(t, r.Done(), "idle reap")
		ev.Wait(t, "sleepy platform scaled to zero")
		if p.Serving(a.ID, a.ServeKey()) != nil {
			t.Error("a reaped runner still serves")
		}
	})

	t.Run("Limits", func(t *testing.T) {
		p, _ := NewPool(t, h.NewBackend(t), Options{Warm: 0, Max: 1})
		a := Deploy(t, h.Redis, "first", "")
		b := Deploy(t, h.Redis, "second", "")
		r := Claim(t, p, a)
		ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
		defer cancel()
		if _, err := p.Claim(ctx, b.Request()); connect.CodeOf(err) != connect.CodeResourceExhausted {
			t.Fatalf("Claim beyond Max: %v, want ResourceExhausted", err)
		}
		r.Release()
		waitDone(t, r.Done(), "release")
		// Room again once the runner is gone.
		for {
			r2, err := p.Claim(ctx, b.Request())
			if err == nil {
				Get(t, r2.Addr(), "second")
				break
			}
			if connect.CodeOf(err) != connect.CodeResourceExhausted || ctx.Err() != nil {
				t.Fatalf("Claim after release: %v", err)
			}
			time.Sleep(20 * time.Millisecond) // the released runner is being removed
		}
	})

	t.Run("Crash", func(t *testing.T) {
		p, ev := NewPool(t, h.NewBackend(t), Options{Warm: 1, Max: 3})
		a := Deploy(t, h.Redis, "fragile", "")
		r := Claim(t, p, a)
		Get(t, r.Addr(), "fragile")
		h.Crash(t, claimedInfo(t, p, a.ID))
		waitDone(t, r.Done(), "crash noticed")
		ev.Wait(t, "fragile platform crashed")
		if p.Serving(a.ID, a.ServeKey()) != nil {
			t.Error("a crashed runner still serves")
		}
		waitWarm(t, p, 1)
		Get(t, Claim(t, p, a).Addr(), "fragile")
	})

	t.Run("RestartManager", func(t *testing.T) {
		b1 := h.NewBackend(t)
		p1, _ := NewPool(t, b1, Options{Warm: 1, Max: 3})
		a := Deploy(t, h.Redis, "lasting", "")
		r := Claim(t, p1, a)
		addr := r.Addr()
		Get(t, addr, "lasting")
		if h.Detach != nil {
			h.Detach(b1)
		}
		p1.Close()

		p2, _ := NewPool(t, h.NewBackend(t), Options{Warm: 1, Max: 3})
		if h.Adopts {
			// The app keeps its runner across the change of manager.
			got := p2.Serving(a.ID, a.ServeKey())
			if got == nil {
				t.Fatalf("the new manager did not take over the runner serving %s (stats %+v)", a.ID, p2.Stats())
			}
			if got.Addr() != addr {
				t.Errorf("taken-over runner at %s, want %s", got.Addr(), addr)
			}
			Get(t, addr, "lasting")
			waitWarm(t, p2, 1)
			if s := p2.Stats(); s.Total != 2 {
				t.Errorf("stats after the takeover %+v, want 2 runners (1 warm, 1 serving)", s)
			}
			got.Release()
			waitDone(t, got.Done(), "release of the taken-over runner")
			return
		}
		waitWarm(t, p2, 1)
		Get(t, Claim(t, p2, a).Addr(), "lasting")
	})
}

// RunnerMain makes a test binary the runner agent when it is started as
// `<test binary> runner ...`, as the backends' commands do in tests. Call
// it first in TestMain; it returns false when the binary runs tests.
func RunnerMain(main func(ctx context.Context, args []string) error) bool {
	if len(os.Args) < 2 || os.Args[1] != "runner" {
		return false
	}
	if err := main(context.Background(), os.Args[2:]); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "runner:", err)
		os.Exit(1)
	}
	os.Exit(0)
	return true
}
