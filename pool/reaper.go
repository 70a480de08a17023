package pool

import (
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"

	"time"
)

// reap destroys runners whose app has been idle for Config.IdleTimeout
// (scale to zero). It scans a few times per timeout so an idle runner lives
// at most about a quarter timeout too long.
func (p *Pool) reap() {
	defer p.wg.Done()
	every := min(max(p.cfg.IdleTimeout/4, 50*time.Millisecond), 5*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case now := <-t.C:
			p.reapIdle(now)
		}
	}
}

func (p *Pool) reapIdle(now time.Time) {
	deadline := now.Add(-p.cfg.IdleTimeout).UnixNano()
	var idle []*Runner
	p.mu.Lock()
	for r := range p.claimed {
		if r.lastUsed.Load() < deadline && !r.released.Load() {
			idle = append(idle, r)
		}
	}
	p.mu.Unlock()
	for _, r := range idle {
		r.Release()
		p.lifecycle(r.appID, v1.EventKind_EVENT_KIND_SCALED_TO_ZERO, r.version, nil, "scaled to zero after %s idle", p.cfg.IdleTimeout)
	}
}
