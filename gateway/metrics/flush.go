package metrics

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// forgetAfter is how many flushes without a request an app's stats stay
// in memory; after that the app is dropped from the map (it comes back on
// its next request), so deleted apps do not accumulate.
const forgetAfter = 360

// writeTimeout bounds each Sink call.
const writeTimeout = 10 * time.Second

// Start begins flushing every FlushInterval and probing every
// ProbeInterval, until Close.
func (r *Recorder) Start() {
	if !r.started.CompareAndSwap(false, true) {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go func() {
		defer close(r.done)
		flush := time.NewTicker(r.cfg.FlushInterval)
		defer flush.Stop()
		probe := time.NewTicker(r.cfg.ProbeInterval)
		defer probe.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-flush.C:
				r.Flush(ctx)
			case <-probe.C:
				r.probeAll(ctx)
			}
		}
	}()
}

// Close stops the loops and flushes what is left, within ctx.
func (r *Recorder) Close(ctx context.Context) {
	if r.started.Load() {
		r.stop()
		<-r.done
	}
	r.Flush(ctx)
}

// Flush writes the counts, errors and changed health reports recorded
// since the previous flush to the Sink.
func (r *Recorder) Flush(ctx context.Context) {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	now := time.Now()
	minute := timestamppb.New(now.UTC().Truncate(time.Minute))
	var windows []*v1.MetricsWindow
	var errs []*v1.RequestError
	var idle []string
	for id, s := range *r.apps.Load() {
		if w := s.drain(id, minute); w != nil {
			windows = append(windows, w)
			s.idle = 0
		} else if s.idle++; s.idle > forgetAfter {
			idle = append(idle, id)
		}
		errs = append(errs, s.drainErrors()...)
	}
	r.forget(idle)
	health := r.drainHealth(now)
	r.write(ctx, "windows", len(windows), func(ctx context.Context) error { return r.cfg.Sink.WriteWindows(ctx, windows) })
	r.write(ctx, "errors", len(errs), func(ctx context.Context) error { return r.cfg.Sink.WriteErrors(ctx, errs) })
	r.write(ctx, "health", len(health), func(ctx context.Context) error { return r.cfg.Sink.WriteHealth(ctx, health) })
}

func (r *Recorder) write(ctx context.Context, what string, n int, f func(context.Context) error) {
	if n == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if err := f(ctx); err != nil {
		r.cfg.Logger.Warn("flush app metrics: dropped", "what", what, "count", n, "err", err)
	}
}

// drain swaps s's counters for zero and returns them as a window, or nil
// when no request came since the last drain.
func (s *appStats) drain(appID string, minute *timestamppb.Timestamp) *v1.MetricsWindow {
	n := s.requests.Swap(0)
	if n == 0 {
		return nil
	}
	w := &v1.MetricsWindow{AppId: appID, Minute: minute, Requests: n, LatencyBuckets: map[int32]int64{}}
	for class := range s.byClass {
		c := s.byClass[class].Swap(0)
		switch class {
		case 4:
			w.Status_4Xx += c
		case 5:
			w.Status_5Xx += c
		default:
			w.Status_2Xx += c
		}
	}
	w.LatencySumMicros = s.sumMicros.Swap(0)
	for i := range s.buckets {
		if c := s.buckets[i].Swap(0); c != 0 {
			w.LatencyBuckets[int32(i)] = c
		}
	}
	return w
}

// drainErrors returns the errors kept since the last drain, oldest first.
func (s *appStats) drainErrors() []*v1.RequestError {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if len(s.errs) == 0 {
		return nil
	}
	out := append(s.errs[s.next:len(s.errs):len(s.errs)], s.errs[:s.next]...)
	s.errs, s.next = nil, 0
	return out
}

// forget drops the stats of apps idle for a long time.
func (r *Recorder) forget(ids []string) {
	if len(ids) == 0 {
		return
	}
	r.appsMu.Lock()
	defer r.appsMu.Unlock()
	old := *r.apps.Load()
	m := make(map[string]*appStats, len(old))
	for k, v := range old {
		m[k] = v
	}
	for _, id := range ids {
		// A request may have come since the flush looked; it is counted
		// into the old stats and lost. That is one request of an app idle
		// for forgetAfter flushes, once.
		delete(m, id)
	}
	r.apps.Store(&m)
}
