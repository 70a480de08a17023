package pool

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// Runner is a runner claimed for one app version.
type Runner struct {
	p        *Pool
	inst     Instance
	appID    string
	version  string
	serveKey string // see ServeKey
	timings  *v1.SpecializeResponse
	lastUsed atomic.Int64 // unix nanos of the last request
	released atomic.Bool
	ready    atomic.Bool // specialized: serving its app
	// stopping is closed as soon as the runner must take no new requests:
	// at Release (or reaping), or when it exits by itself. Closing it
	// before the process is gone keeps callers from sending requests to
	// a runner that is shutting down.
	stopping chan struct{}
	stopOnce sync.Once

	// start is this runner's cold start until finishStart records it, once
	// the first byte of the app's first answer is known (or will not be);
	// startWait records it without one after firstByteWait.
	startMu   sync.Mutex
	start     *v1.ColdStart
	startWait *time.Timer
}

// Addr is host:port of the app's HTTP listener.
func (r *Runner) Addr() string { return r.inst.AppAddr() }

// Touch records a request now; the reaper destroys runners untouched for
// Config.IdleTimeout.
func (r *Runner) Touch() { r.lastUsed.Store(time.Now().UnixNano()) }

// Done is closed once the runner takes no new requests: it was released
// or reaped (requests in flight still complete), or it exited.
func (r *Runner) Done() <-chan struct{} { return r.stopping }

func (r *Runner) markStopping() { r.stopOnce.Do(func() { close(r.stopping) }) }

// Timings are the phase timings the runner reported when it was specialized.
func (r *Runner) Timings() *v1.SpecializeResponse { return r.timings }

// Answered reports the first byte of the app's answer to the first request
// that waited for this runner's start: how long after Claim returned the
// response head arrived. The pool then records the cold start with it. A
// start nobody reports for (no request waited, as for a start ahead of
// requests after a redeploy) is recorded without one after firstByteWait,
// or when the runner stops, whichever comes first. Only the first call
// counts.
func (r *Runner) Answered(firstByte time.Duration) { r.finishStart(firstByte) }

// firstByteWait is how long a cold start's record waits for Answered.
const firstByteWait = 10 * time.Second

// finishStart records r's cold start, once, with firstByte (0: none).
func (r *Runner) finishStart(firstByte time.Duration) {
	r.startMu.Lock()
	cs, wait := r.start, r.startWait
	r.start = nil
	r.startMu.Unlock()
	if cs == nil {
		return // recorded already, or not a successful start
	}
	wait.Stop()
	cs.FirstByteMicros = firstByte.Microseconds()
	first := "none (no request waited)"
	if firstByte > 0 {
		first = ms(firstByte)
	}
	fetch, write := "fetch "+us(cs.GetFetchMicros())+", verify "+us(cs.GetVerifyMicros()), "write "+us(cs.GetWriteMicros())
	if cs.GetCached() {
		fetch, write = "fetch none", "link from the host's cache "+us(cs.GetWriteMicros())
	}
	if cs.GetDepsMicros() > 0 || cs.GetDepsCached() {
		how := "unpacked"
		if cs.GetDepsCached() {
			how = "on the host already"
		}
		write += ", dependencies " + us(cs.GetDepsMicros()) + " (" + how + ")"
	}
	r.p.record(r.appID, cs)
	r.p.lifecycle(r.appID, v1.EventKind_EVENT_KIND_COLD_STARTED, r.version, cs,
		"cold start %s: claim %s, %s, %s, load %s (import %s, %s compiled at deploy), first byte %s",
		us(cs.GetTotalMicros()), us(cs.GetClaimMicros()), fetch, write,
		us(cs.GetLoadMicros()), us(cs.GetImportMicros()), modules(cs.GetCompiledModules()), first)
}

// Release stops the runner, letting requests in flight finish within
// Config.StopGrace. It is idempotent.
func (r *Runner) Release() {
	r.finishStart(0)
	if r.released.CompareAndSwap(false, true) {
		r.markStopping()
		go r.inst.Stop(r.p.cfg.StopGrace)
	}
}

// refillDelay is how long after a successful claim the pool starts the
// claimed runner's replacement (unless no runner is left warm: then at
// once). The claim's caller has a request to send the runner, whose answer
// is a Python process's first, and starting a runner (an agent's exec, a
// fork and a warm-up) is tens of milliseconds of CPU; started a little
// later it does not compete with that request (about 2 ms of the bench's
// cold start on 2 cores).
const refillDelay = 25 * time.Millisecond

// Claim returns a runner specialized for req's app version: a warm one when
// there is one, else one started now. Errors are Connect errors: capacity is
// ResourceExhausted, an app that fails to load is FailedPrecondition with
// the reason.
func (p *Pool) Claim(ctx context.Context, req *v1.SpecializeRequest) (*Runner, error) {
	return p.ClaimAhead(ctx, req, nil)
}

// ClaimAhead is Claim, which also calls picked (when not nil), on Claim's
// goroutine, with the address the app will serve on as soon as a runner is
// chosen, before it is specialized. A warm runner accepts connections
// already and holds what is sent on them until its app has started, so a
// caller may send the request that waits for the start ahead of it. If a
// runner is returned, it is the one at that address; if Claim fails, that
// runner is stopped, and what was sent to it is never answered (the caller
// closes its connections).
func (p *Pool) ClaimAhead(ctx context.Context, req *v1.SpecializeRequest, picked func(addr string)) (*Runner, error) {
	t0 := time.Now()
	inst, err := p.take(ctx)
	if err != nil {
		return nil, connectError(err)
	}
	if inst == nil {
		inst, err = p.startInstance(ctx, nil)
		if err != nil {
			return nil, connectError(err)
		}
	}
	claimed := time.Since(t0)
	if addr := inst.AppAddr(); picked != nil && addr != "" {
		picked(addr)
	}
	r := &Runner{p: p, inst: inst, appID: req.GetAppId(), version: req.GetVersion(), serveKey: ServeKey(req), stopping: make(chan struct{})}
	r.Touch()
	p.mu.Lock()
	p.claimed[r] = struct{}{}
	p.mu.Unlock()
	p.wg.Add(1)
	go p.watchClaimed(r)

	appID := req.GetAppId()
	inst.SetLog(func(t time.Time, stream, text string) { p.cfg.Log(appID, t, stream, text) })
	sctx, cancel := context.WithTimeout(ctx, p.cfg.SpecializeTimeout)
	defer cancel()
	res, err := inst.Specialize(sctx, req)
	if err != nil {
		p.refill()
		r.Release()
		cs := &v1.ColdStart{Time: timestamppb.New(t0), Version: req.GetVersion(),
			TotalMicros: time.Since(t0).Microseconds(), ClaimMicros: claimed.Microseconds(), Error: err.Error()}
		p.record(appID, cs)
		p.lifecycle(appID, v1.EventKind_EVENT_KIND_START_FAILED, req.GetVersion(), cs, "start failed: %v", err)
		return nil, connectError(err)
	}
	r.timings = res
	r.ready.Store(true)
	time.AfterFunc(refillDelay, p.refill)
	r.startMu.Lock()
	r.start = &v1.ColdStart{Time: timestamppb.New(t0), Version: req.GetVersion(),
		TotalMicros: time.Since(t0).Microseconds(), ClaimMicros: claimed.Microseconds(),
		FetchMicros: res.GetFetchMicros(), VerifyMicros: res.GetVerifyMicros(), WriteMicros: res.GetWriteMicros(),
		LoadMicros: res.GetLoadMicros(), ImportMicros: res.GetImportMicros(), CompiledModules: res.GetCompiledModules(),
		Cached: res.GetCached(), DepsMicros: res.GetDepsMicros(), DepsCached: res.GetDepsCached()}
	r.startWait = time.AfterFunc(firstByteWait, func() { r.finishStart(0) })
	r.startMu.Unlock()
	return r, nil
}

// watchClaimed forgets r once it exits, recording a crash if nobody
// released it.
func (p *Pool) watchClaimed(r *Runner) {
	defer p.wg.Done()
	<-r.inst.Done()
	r.finishStart(0)
	r.markStopping()
	if !r.released.Load() {
		p.lifecycle(r.appID, v1.EventKind_EVENT_KIND_CRASHED, r.version, nil, "crashed: %v", r.inst.ExitErr())
	}
	p.forget(r)
}

func (p *Pool) record(appID string, cs *v1.ColdStart) {
	if p.cfg.ColdStart != nil {
		p.rep.report(func() { p.cfg.ColdStart(appID, cs) })
	}
}

// lifecycle reports a lifecycle event of appID both as a platform log line
// and, when Config.Event is set, as an Event, through the reporter.
func (p *Pool) lifecycle(appID string, kind v1.EventKind, version string, cs *v1.ColdStart, format string, args ...any) {
	now, msg := time.Now(), fmt.Sprintf(format, args...)
	p.rep.report(func() {
		p.cfg.Log(appID, now, "platform", msg)
		if p.cfg.Event != nil {
			p.cfg.Event(appID, &v1.Event{Time: timestamppb.New(now), Kind: kind, Message: msg, Version: version, ColdStart: cs})
		}
	})
}

// modules is "1 module" or "N modules".
func modules(n int32) string {
	if n == 1 {
		return "1 module"
	}
	return fmt.Sprintf("%d modules", n)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }
func us(n int64) string         { return ms(time.Duration(n) * time.Microsecond) }
