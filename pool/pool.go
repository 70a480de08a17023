package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"connectrpc.com/connect"
)

// Pool keeps runners warm and claims them for apps.
type Pool struct {
	cfg Config

	mu       sync.Mutex
	warm     []Instance           // ready for a claim, oldest first
	claimed  map[*Runner]struct{} // specialized, serving an app
	starting int                  // Backend.Start calls in flight
	total    int                  // starting + warm + claimed + stopping
	closed   bool
	changed  chan struct{} // closed and replaced whenever warm grows or total shrinks
	rep      *reporter     // runs the Config hooks for the pool's records

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a Pool and starts filling it. Close stops it.
func New(cfg Config) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool{cfg: cfg, claimed: map[*Runner]struct{}{}, changed: make(chan struct{}), rep: newReporter(), ctx: ctx, cancel: cancel}
	if err := p.adopt(); err != nil {
		p.Close()
		return nil, err
	}
	p.mu.Lock()
	p.refillLocked()
	p.mu.Unlock()
	p.wg.Add(1)
	go p.reap()
	return p, nil
}

// Stats is a snapshot of the pool's size.
type Stats struct {
	Warm     int `json:"warm"`
	Claimed  int `json:"claimed"`
	Starting int `json:"starting"`
	Total    int `json:"total"`
}

// Stats returns the pool's current size.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Warm: len(p.warm), Claimed: len(p.claimed), Starting: p.starting, Total: p.total}
}

// WaitWarm blocks until at least n runners are warm or ctx ends.
func (p *Pool) WaitWarm(ctx context.Context, n int) error {
	for {
		p.mu.Lock()
		ok, ch := len(p.warm) >= n, p.changed
		p.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// notifyLocked wakes everything waiting for the pool to change.
func (p *Pool) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// refillLocked starts runners until Warm are warm or starting, within Max.
func (p *Pool) refillLocked() {
	for !p.closed && len(p.warm)+p.starting < p.cfg.Warm && p.total < p.cfg.Max {
		p.starting++
		p.total++
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			_, err := p.startInstance(p.ctx, func(inst Instance) {
				if p.closed {
					p.total--
					go inst.Stop(p.cfg.StopGrace)
					return
				}
				p.warm = append(p.warm, inst)
				p.notifyLocked()
				p.wg.Add(1)
				go p.watchWarm(inst)
			})
			if err != nil && p.ctx.Err() == nil {
				p.cfg.Logger.Error("start warm runner", "err", err)
			}
		}()
	}
}

// startInstance starts a runner in a slot already counted in starting and
// total, within Config.StartTimeout. Under p.mu it frees the slot's
// starting count and, if the start failed, the slot itself; on success it
// calls started (if not nil) in the same critical section, so no one sees
// the runner neither starting nor placed.
func (p *Pool) startInstance(ctx context.Context, started func(Instance)) (Instance, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.StartTimeout)
	defer cancel()
	inst, err := p.cfg.Backend.Start(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.starting--
	if err != nil {
		p.total--
		p.notifyLocked()
		return nil, err
	}
	if started != nil {
		started(inst)
	}
	return inst, nil
}

// watchWarm drops inst from the warm set if it exits before being claimed.
func (p *Pool) watchWarm(inst Instance) {
	defer p.wg.Done()
	select {
	case <-inst.Done():
	case <-p.ctx.Done():
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, w := range p.warm {
		if w == inst {
			p.warm = append(p.warm[:i], p.warm[i+1:]...)
			p.total--
			p.cfg.Logger.Warn("warm runner exited", "err", inst.ExitErr())
			p.notifyLocked()
			p.refillLocked()
			return
		}
	}
}

// take removes a warm runner from the set, or reserves room to start one.
// It returns nil, nil when the caller must start a runner itself. At
// capacity it waits for a runner that is already starting, if any.
func (p *Pool) take(ctx context.Context) (Instance, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		if len(p.warm) > 0 {
			inst := p.warm[0]
			p.warm = p.warm[1:]
			// Starting a replacement costs a fork and a warm-up, CPU the
			// cold start that took inst needs now; while another runner is
			// warm it waits until that start is over (Claim refills, see
			// refillDelay).
			if len(p.warm) == 0 {
				p.refillLocked()
			}
			p.mu.Unlock()
			return inst, nil
		}
		if p.total < p.cfg.Max {
			p.total++
			p.starting++
			p.mu.Unlock()
			return nil, nil
		}
		if p.starting == 0 {
			p.mu.Unlock()
			return nil, ErrCapacity
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// refill tops the warm set up; see refillLocked.
func (p *Pool) refill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refillLocked()
}

// forget forgets a runner that has exited.
func (p *Pool) forget(r *Runner) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.claimed, r)
	p.total--
	p.notifyLocked()
	p.refillLocked()
}

// connectError classifies pool errors for callers across process
// boundaries; errors from the runner keep their Connect codes.
func connectError(err error) error {
	var ce *connect.Error
	switch {
	case errors.As(err, &ce):
		return err
	case errors.Is(err, ErrCapacity):
		return connect.NewError(connect.CodeResourceExhausted, errors.New("the platform is at capacity: every runner is busy; retry in a moment"))
	case errors.Is(err, ErrClosed):
		return connect.NewError(connect.CodeUnavailable, errors.New("the platform is shutting down"))
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, errors.New("no runner became ready in time"))
	}
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf("could not start a runner: %v", err))
}

// Close destroys every runner and stops the pool.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	insts := append([]Instance(nil), p.warm...)
	p.warm = nil
	var runners []*Runner
	for r := range p.claimed {
		runners = append(runners, r)
	}
	p.mu.Unlock()
	p.cancel()
	var wg sync.WaitGroup
	for _, inst := range insts {
		wg.Go(func() { inst.Stop(p.cfg.StopGrace) })
	}
	for _, r := range runners {
		wg.Go(func() { r.inst.Stop(p.cfg.StopGrace) })
	}
	wg.Wait()
	p.wg.Wait()
	p.rep.close()
}

// RunnerInfo describes a runner, for operators and benchmarks.
type RunnerInfo struct {
	AppID   string `json:"app_id,omitempty"`
	Version string `json:"version,omitempty"`
	Addr    string `json:"addr,omitempty"`
	// Pids are the runner's processes, when its backend runs local ones.
	Pids []int `json:"pids,omitempty"`
}

// processes is implemented by instances that are local processes.
type processes interface {
	Pid() int
	AppPid() int
}

func pids(inst Instance) []int {
	if p, ok := inst.(processes); ok {
		return []int{p.Pid(), p.AppPid()}
	}
	return nil
}

// Runners lists the warm runners and the runners serving apps.
func (p *Pool) Runners() (warm, claimed []RunnerInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, inst := range p.warm {
		warm = append(warm, RunnerInfo{Pids: pids(inst)})
	}
	for r := range p.claimed {
		claimed = append(claimed, RunnerInfo{AppID: r.appID, Version: r.version, Addr: r.Addr(), Pids: pids(r.inst)})
	}
	return warm, claimed
}
