package poolrpc

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

// TouchEvery is how often a Client reports the runners it used and learns
// which are gone.
const TouchEvery = 500 * time.Millisecond

// Client claims runners from a PoolService for one gateway.
type Client struct {
	c   gofastapiv1connect.PoolServiceClient
	log *slog.Logger

	mu   sync.Mutex
	held map[string]*Runner

	stop chan struct{}
	wg   sync.WaitGroup
}

// NewClient returns a Client of the service at baseURL, authenticating with
// token. Close stops it.
func NewClient(baseURL, token string, log *slog.Logger) *Client {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: time.Minute}}
	c := &Client{
		c: gofastapiv1connect.NewPoolServiceClient(hc, baseURL, connect.WithInterceptors(connect.UnaryInterceptorFunc(
			func(next connect.UnaryFunc) connect.UnaryFunc {
				return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
					req.Header().Set("Authorization", "Bearer "+token)
					return next(ctx, req)
				}
			}))),
		log:  log,
		held: map[string]*Runner{},
		stop: make(chan struct{}),
	}
	c.wg.Add(1)
	go c.loop()
	return c
}

// Runner is a runner held through the service.
type Runner struct {
	c       *Client
	id      string
	appID   string
	addr    string
	Cold    bool
	touched atomic.Bool
	// firstByte is the start's first byte in microseconds, once reported
	// and until the next Touch carries it; -1 after that.
	firstByte atomic.Int64
	done      chan struct{}
	once      sync.Once
}

func (r *Runner) Addr() string          { return r.addr }
func (r *Runner) Touch()                { r.touched.Store(true) }
func (r *Runner) Done() <-chan struct{} { return r.done }
func (r *Runner) AppID() string         { return r.appID }
func (r *Runner) gone()                 { r.once.Do(func() { close(r.done) }) }

// Answered reports the first byte of the runner's start to the pool
// manager with the next Touch, if this client's Claim started it; see
// pool.Runner.Answered.
func (r *Runner) Answered(firstByte time.Duration) {
	if r.Cold {
		r.firstByte.CompareAndSwap(0, max(firstByte.Microseconds(), 1))
	}
}

// Release asks the service to stop the runner and forgets it.
func (r *Runner) Release() {
	r.c.forget(r.id)
	r.gone()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := r.c.c.Release(ctx, connect.NewRequest(&v1.PoolServiceReleaseRequest{RunnerId: r.id})); err != nil {
			r.c.log.Warn("release runner", "runner", r.id, "err", err)
		}
	}()
}

// Claim returns the runner serving req's app version.
func (c *Client) Claim(ctx context.Context, req *v1.SpecializeRequest) (*Runner, error) {
	res, err := c.c.Claim(ctx, connect.NewRequest(&v1.PoolServiceClaimRequest{Specialize: req}))
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.held[res.Msg.GetRunnerId()]; r != nil {
		return r, nil
	}
	r := &Runner{c: c, id: res.Msg.GetRunnerId(), appID: req.GetAppId(), addr: res.Msg.GetAppAddr(), Cold: res.Msg.GetCold(), done: make(chan struct{})}
	c.held[r.id] = r
	return r, nil
}

// Held lists the runners this client holds, for stats.
func (c *Client) Held() []*Runner {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Runner, 0, len(c.held))
	for _, r := range c.held {
		out = append(out, r)
	}
	return out
}

func (c *Client) forget(id string) {
	c.mu.Lock()
	delete(c.held, id)
	c.mu.Unlock()
}

func (c *Client) loop() {
	defer c.wg.Done()
	t := time.NewTicker(TouchEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.sync()
		}
	}
}

// sync reports touched runners and closes Done of those gone.
func (c *Client) sync() {
	req := &v1.PoolServiceTouchRequest{}
	c.mu.Lock()
	for id, r := range c.held {
		req.Watched = append(req.Watched, id)
		if r.touched.Swap(false) {
			req.Touched = append(req.Touched, id)
		}
		if us := r.firstByte.Load(); us > 0 && r.firstByte.CompareAndSwap(us, -1) {
			if req.FirstByteMicros == nil {
				req.FirstByteMicros = map[string]int64{}
			}
			req.FirstByteMicros[id] = us
		}
	}
	c.mu.Unlock()
	if len(req.Watched) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.c.Touch(ctx, connect.NewRequest(req))
	if err != nil {
		// The runners may well still serve; keep them and tell next time.
		c.log.Warn("pool service touch", "err", err)
		return
	}
	for _, id := range res.Msg.GetGone() {
		c.mu.Lock()
		r := c.held[id]
		delete(c.held, id)
		c.mu.Unlock()
		if r != nil {
			r.gone()
		}
	}
}

// Close stops the client; the runners it holds go on serving until the
// pool reaps them.
func (c *Client) Close() {
	close(c.stop)
	c.wg.Wait()
}
