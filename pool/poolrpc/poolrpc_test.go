package poolrpc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/pool"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

// countingBackend makes in-memory runners and counts specializations; the
// service's own logic (sharing, auth, gone runners) is under test here, the
// backends have their own suite (pool/pooltest).
type countingBackend struct{ specialized atomic.Int32 }

func (b *countingBackend) Start(ctx context.Context) (pool.Instance, error) {
	return &inst{b: b, done: make(chan struct{})}, nil
}

type inst struct {
	b    *countingBackend
	once sync.Once
	done chan struct{}
}

func (i *inst) AppAddr() string                               { return "127.0.0.1:9" }
func (i *inst) SetLog(func(t time.Time, stream, text string)) {}
func (i *inst) Done() <-chan struct{}                         { return i.done }
func (i *inst) ExitErr() error                                { return nil }
func (i *inst) Stop(time.Duration)                            { i.once.Do(func() { close(i.done) }) }
func (i *inst) Specialize(ctx context.Context, req *v1.SpecializeRequest) (*v1.SpecializeResponse, error) {
	i.b.specialized.Add(1)
	time.Sleep(20 * time.Millisecond) // a cold start takes a while: concurrent claims overlap it
	return &v1.SpecializeResponse{AppAddr: "127.0.0.1:9"}, nil
}

func newService(t *testing.T, configure ...func(*pool.Config)) (*countingBackend, *Server, string) {
	t.Helper()
	b := &countingBackend{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := pool.Config{Backend: b, Warm: 1, Max: 4, IdleTimeout: time.Hour, StartTimeout: time.Second,
		SpecializeTimeout: time.Second, StopGrace: time.Second, Log: func(string, time.Time, string, string) {}, Logger: log}
	for _, f := range configure {
		f(&cfg)
	}
	p, err := pool.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	s := NewServer(log)
	s.SetPool(p)
	mux := http.NewServeMux()
	mux.Handle(s.Handler("secret"))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return b, s, srv.URL
}

func TestClaimSharedAcrossGateways(t *testing.T) {
	b, _, url := newService(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	g1, g2 := NewClient(url, "secret", log), NewClient(url, "secret", log)
	defer g1.Close()
	defer g2.Close()
	req := &v1.SpecializeRequest{AppId: "a", Version: "v1"}
	var wg sync.WaitGroup
	runners := make([]*Runner, 8)
	for i := range runners {
		wg.Go(func() {
			c := g1
			if i%2 == 1 {
				c = g2
			}
			r, err := c.Claim(context.Background(), req)
			if err != nil {
				t.Error(err)
				return
			}
			runners[i] = r
		})
	}
	wg.Wait()
	if n := b.specialized.Load(); n != 1 {
		t.Fatalf("8 concurrent claims from two gateways specialized %d runners, want 1", n)
	}
	// A release through one gateway reaches the other as Done.
	runners[0].Release()
	select {
	case <-runners[1].Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the other gateway's handle never saw the runner gone")
	}
	r, err := g2.Claim(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if n := b.specialized.Load(); n != 2 || !r.Cold {
		t.Errorf("claim after release: %d specializations, cold %v; want a second cold start", n, r.Cold)
	}
}

// TestClaimSharedPerServeKey: gateways share a runner for an app version
// only when it was started with the same route (serve_key): another
// entrypoint or environment of the same version needs a runner of its own.
func TestClaimSharedPerServeKey(t *testing.T) {
	b, _, url := newService(t)
	g := NewClient(url, "secret", slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer g.Close()
	keys := []string{"v1+entry=app.py", "v1+entry=app.py", "v1+entry=main.py", "v1+entry=main.py+env=2", "v1+entry=main.py+env=2"}
	ids := make([]string, len(keys))
	for i, key := range keys {
		r, err := g.Claim(context.Background(), &v1.SpecializeRequest{AppId: "a", Version: "v1", ServeKey: key})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = r.id
	}
	if ids[0] != ids[1] || ids[3] != ids[4] || ids[0] == ids[2] || ids[2] == ids[3] {
		t.Errorf("runners of the claims of %q: %q; want one per serve key", keys, ids)
	}
	if n := b.specialized.Load(); n != 3 {
		t.Errorf("claims of three serve keys of one version specialized %d runners, want 3", n)
	}
}

// TestFirstByteReachesThePool checks that the first byte a gateway reports
// for a start its Claim made reaches the pool manager's cold-start record
// (with the next Touch); a gateway that shares the runner reports nothing.
func TestFirstByteReachesThePool(t *testing.T) {
	records := make(chan *v1.ColdStart, 1)
	_, _, url := newService(t, func(c *pool.Config) {
		c.ColdStart = func(_ string, cs *v1.ColdStart) { records <- cs }
	})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	g1, g2 := NewClient(url, "secret", log), NewClient(url, "secret", log)
	defer g1.Close()
	defer g2.Close()
	req := &v1.SpecializeRequest{AppId: "a", Version: "v1"}
	cold, err := g1.Claim(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	shared, err := g2.Claim(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !cold.Cold || shared.Cold {
		t.Fatalf("cold %v, shared %v: want only the first claim cold", cold.Cold, shared.Cold)
	}
	shared.Answered(time.Second)
	cold.Answered(5 * time.Millisecond)
	select {
	case cs := <-records:
		if cs.GetFirstByteMicros() != 5000 {
			t.Errorf("recorded first byte %d us, want 5000", cs.GetFirstByteMicros())
		}
	case <-time.After(30 * time.Second): // only keeps a broken test from hanging
		t.Fatal("no cold start recorded")
	}
}

func TestTokenRequired(t *testing.T) {
	_, _, url := newService(t)
	for _, tok := range []string{"", "wrong"} {
		c := gofastapiv1connect.NewPoolServiceClient(http.DefaultClient, url)
		req := connect.NewRequest(&v1.PoolServiceClaimRequest{Specialize: &v1.SpecializeRequest{AppId: "a", Version: "v"}})
		if tok != "" {
			req.Header().Set("Authorization", "Bearer "+tok)
		}
		if _, err := c.Claim(context.Background(), req); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("Claim with token %q: %v, want Unauthenticated", tok, err)
		}
		if _, err := c.Release(context.Background(), connect.NewRequest(&v1.PoolServiceReleaseRequest{RunnerId: "x"})); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("Release with token %q: %v, want Unauthenticated", tok, err)
		}
		if _, err := c.Touch(context.Background(), connect.NewRequest(&v1.PoolServiceTouchRequest{})); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("Touch with token %q: %v, want Unauthenticated", tok, err)
		}
	}
}

func TestNotLeading(t *testing.T) {
	_, s, url := newService(t)
	s.SetPool(nil)
	c := NewClient(url, "secret", slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer c.Close()
	_, err := c.Claim(context.Background(), &v1.SpecializeRequest{AppId: "a", Version: "v"})
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeUnavailable {
		t.Fatalf("Claim from a manager that does not lead: %v, want Unavailable", err)
	}
}
