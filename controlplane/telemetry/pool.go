package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// PoolCounts are the pool's runner counts at one moment.
type PoolCounts struct {
	Warm, Claimed, Starting, Total int
}

// ColdStarts counts cold starts, times them and counts failed
// specializations.
type ColdStarts struct {
	started  *prometheus.CounterVec
	duration prometheus.Histogram
}

// NewPool registers the pool's metrics in reg: runner gauges read from
// counts at each scrape, and cold start metrics fed through the returned
// ColdStarts.
func NewPool(reg prometheus.Registerer, counts func() PoolCounts) (*ColdStarts, error) {
	gauge := func(name, help string, v func(PoolCounts) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "gofastapi", Subsystem: "pool", Name: name, Help: help},
			func() float64 { return float64(v(counts())) })
	}
	cs := &ColdStarts{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gofastapi", Subsystem: "pool", Name: "cold_starts_total",
			Help: "Cold starts (a runner specialized for an app), by result: ok, or failed (the specialization failed).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "gofastapi", Subsystem: "pool", Name: "cold_start_duration_seconds",
			Help:    "Time from claiming a runner to the app answering its first request, for cold starts that succeeded.",
			Buckets: []float64{.002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
	}
	for _, c := range []prometheus.Collector{
		gauge("runners_warm", "Generic runners ready to be claimed.", func(c PoolCounts) int { return c.Warm }),
		gauge("runners_claimed", "Runners serving an app.", func(c PoolCounts) int { return c.Claimed }),
		gauge("runners_starting", "Runners being started.", func(c PoolCounts) int { return c.Starting }),
		gauge("runners_total", "Every runner that exists: starting, warm, claimed and stopping.", func(c PoolCounts) int { return c.Total }),
		cs.started, cs.duration,
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	cs.started.WithLabelValues("ok")
	cs.started.WithLabelValues("failed")
	return cs, nil
}

// Observe records one cold start.
func (c *ColdStarts) Observe(cs *v1.ColdStart) {
	if cs.GetError() != "" {
		c.started.WithLabelValues("failed").Inc()
		return
	}
	c.started.WithLabelValues("ok").Inc()
	c.duration.Observe((time.Duration(cs.GetTotalMicros()+cs.GetFirstByteMicros()) * time.Microsecond).Seconds())
}
