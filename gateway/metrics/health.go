package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// maxCrashes is how many crash times a health report keeps.
const maxCrashes = 10

// healthState is what the Recorder knows of one app's runner.
type healthState struct {
	report *v1.HealthReport
	addr   string // the running runner's app address, "" when down
	dirty  bool   // changed since the last flush
}

// state returns appID's health state, creating it; r.healthMu must be held.
func (r *Recorder) state(appID string) *healthState {
	h := r.health[appID]
	if h == nil {
		h = &healthState{report: &v1.HealthReport{AppId: appID}}
		r.health[appID] = h
	}
	return h
}

// RunnerUp records that a runner at addr now serves appID. The previous
// runner's probe result no longer applies.
func (r *Recorder) RunnerUp(appID, addr string) {
	r.healthMu.Lock()
	defer r.healthMu.Unlock()
	h := r.state(appID)
	h.addr = addr
	h.report.RunnerUp = true
	h.report.RunnerSince = timestamppb.Now()
	h.report.Probe = nil
	h.dirty = true
}

// RunnerDown records that appID's runner at addr stopped serving (released,
// reaped or crashed). A later runner's RunnerUp wins over an earlier
// runner's RunnerDown.
func (r *Recorder) RunnerDown(appID, addr string) {
	r.healthMu.Lock()
	defer r.healthMu.Unlock()
	h := r.state(appID)
	if h.addr != addr {
		return
	}
	h.addr = ""
	h.report.RunnerUp = false
	h.dirty = true
}

// Crashed records that appID's runner exited without being told to, with
// reason (its exit status).
func (r *Recorder) Crashed(appID, reason string) {
	r.healthMu.Lock()
	defer r.healthMu.Unlock()
	h := r.state(appID)
	h.report.Crashes = append([]*timestamppb.Timestamp{timestamppb.Now()}, h.report.Crashes...)
	if len(h.report.Crashes) > maxCrashes {
		h.report.Crashes = h.report.Crashes[:maxCrashes]
	}
	h.report.CrashReason = reason
	h.dirty = true
}

// drainHealth returns copies of the reports changed since the last flush.
func (r *Recorder) drainHealth(now time.Time) []*v1.HealthReport {
	r.healthMu.Lock()
	defer r.healthMu.Unlock()
	var out []*v1.HealthReport
	for id, h := range r.health {
		if !h.dirty {
			if !h.report.GetRunnerUp() && len(h.report.GetCrashes()) == 0 {
				delete(r.health, id) // nothing left to say about it
			}
			continue
		}
		h.dirty = false
		h.report.UpdatedAt = timestamppb.New(now)
		out = append(out, proto.CloneOf(h.report))
	}
	return out
}

// probeAll requests GET /health of every running app at once and records
// the answers.
func (r *Recorder) probeAll(ctx context.Context) {
	type target struct{ appID, addr string }
	var targets []target
	r.healthMu.Lock()
	for id, h := range r.health {
		if h.addr != "" {
			targets = append(targets, target{id, h.addr})
		}
	}
	r.healthMu.Unlock()
	var wg sync.WaitGroup
	for _, t := range targets {
		wg.Go(func() {
			p := r.probeOne(ctx, t.addr)
			r.healthMu.Lock()
			defer r.healthMu.Unlock()
			if h := r.health[t.appID]; h != nil && h.addr == t.addr {
				h.report.Probe = p
				h.dirty = true
			}
		})
	}
	wg.Wait()
}

// ProbeHeader marks the platform's own /health probes, so an app can tell
// them from users' requests.
const ProbeHeader = "X-Gofastapi-Probe"

// probeAddrKey is the context key of the runner a probe is for.
type probeAddrKey struct{}

// probeOne requests GET /health of the runner at addr (see appaddr).
func (r *Recorder) probeOne(ctx context.Context, addr string) *v1.HealthProbe {
	p := &v1.HealthProbe{Time: timestamppb.Now()}
	ctx = context.WithValue(ctx, probeAddrKey{}, addr)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://localhost/health", nil)
	if err != nil {
		p.Error = err.Error()
		return p
	}
	req.Header.Set(ProbeHeader, "1")
	res, err := r.probe.Do(req)
	if err != nil {
		p.Defined = true
		p.Error = fmt.Sprintf("no answer within %s", r.cfg.ProbeTimeout)
		if ctx.Err() == nil && !isTimeout(err) {
			p.Error = "connection failed"
		}
		return p
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	p.Status = int32(res.StatusCode)
	p.Defined = res.StatusCode != http.StatusNotFound && res.StatusCode != http.StatusMethodNotAllowed
	return p
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
