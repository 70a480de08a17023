package pool

import (
	"context"
	"fmt"
	"time"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// Adopter is implemented by backends whose runners outlive the process
// that manages them (pods): a new pool manager takes over the runners that
// exist instead of starting afresh, so apps being served keep their runner.
// New calls Existing once, before it starts filling the pool.
type Adopter interface {
	Existing(ctx context.Context) (warm []Instance, claimed []Adopted, err error)
}

// Adopted is a runner that was specialized before this pool existed.
type Adopted struct {
	Inst    Instance
	AppID   string
	Version string
	// ServeKey is the ServeKey of the request it was specialized with;
	// empty means Version.
	ServeKey string
}

// ServeKey names what a runner specialized with req serves: req's
// serve_key, or its version when that is empty.
func ServeKey(req *v1.SpecializeRequest) string {
	if k := req.GetServeKey(); k != "" {
		return k
	}
	return req.GetVersion()
}

// adoptLocked places runners found by an Adopter: warm ones in the warm set,
// specialized ones as claimed runners of their app, counted in total even
// beyond Max (then claims wait until some are gone).
func (p *Pool) adoptLocked(warm []Instance, claimed []Adopted) {
	for _, inst := range warm {
		p.warm = append(p.warm, inst)
		p.total++
		p.wg.Add(1)
		go p.watchWarm(inst)
	}
	for _, a := range claimed {
		key := a.ServeKey
		if key == "" {
			key = a.Version
		}
		r := &Runner{p: p, inst: a.Inst, appID: a.AppID, version: a.Version, serveKey: key, stopping: make(chan struct{})}
		r.Touch()
		r.timings = &v1.SpecializeResponse{AppAddr: a.Inst.AppAddr()}
		r.ready.Store(true)
		appID := a.AppID
		a.Inst.SetLog(func(t time.Time, stream, text string) { p.cfg.Log(appID, t, stream, text) })
		p.claimed[r] = struct{}{}
		p.total++
		p.wg.Add(1)
		go p.watchClaimed(r)
	}
	if len(warm)+len(claimed) > 0 {
		p.notifyLocked()
	}
}

// adopt asks an Adopter backend for the runners that exist already.
func (p *Pool) adopt() error {
	a, ok := p.cfg.Backend.(Adopter)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.StartTimeout)
	defer cancel()
	warm, claimed, err := a.Existing(ctx)
	if err != nil {
		return fmt.Errorf("pool: take over existing runners: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.adoptLocked(warm, claimed)
	if len(warm)+len(claimed) > 0 {
		p.cfg.Logger.Info("took over existing runners", "warm", len(warm), "serving", len(claimed))
	}
	return nil
}

// Serving returns a runner that serves appID with serveKey (see ServeKey)
// and takes requests, if there is one: a runner adopted from an earlier
// pool manager, or one a caller claimed before. Callers that share one
// pool (several gateways) use it to keep one runner per app version (and
// entrypoint, environment and dependencies).
func (p *Pool) Serving(appID, serveKey string) *Runner {
	p.mu.Lock()
	defer p.mu.Unlock()
	for r := range p.claimed {
		if r.appID == appID && r.serveKey == serveKey && r.ready.Load() && !r.released.Load() {
			select {
			case <-r.stopping:
			default:
				return r
			}
		}
	}
	return nil
}
