package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/gofastapi/gofastapi/controlplane/store"
	"github.com/gofastapi/gofastapi/controlplane/telemetry"
	"github.com/gofastapi/gofastapi/gateway"
	"github.com/gofastapi/gofastapi/gateway/metrics"
	"github.com/gofastapi/gofastapi/pool"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// newLogger returns the process's logger: JSON lines (or text) on w at
// level.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want json or text", format)
}

// quieter returns l passing on only records at min or above, where l
// would pass on less.
func quieter(l *slog.Logger, min slog.Level) *slog.Logger {
	return slog.New(minLevel{l.Handler(), min})
}

// minLevel is a handler that drops records below min.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(attrs), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}

// observability is the operators' metrics registry and the gateway's
// per-app recorder of one `gofastapi dev`.
type observability struct {
	reg    *prometheus.Registry
	stores *telemetry.StoreErrors
	rpc    *telemetry.RPC
	// rec is nil with --app-metrics=false.
	rec *metrics.Recorder
}

func newObservability() (*observability, error) {
	o := &observability{reg: prometheus.NewRegistry()}
	if err := o.reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, err
	}
	if err := o.reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}
	var err error
	if o.stores, err = telemetry.NewStoreErrors(o.reg); err != nil {
		return nil, err
	}
	if o.rpc, err = telemetry.NewRPC(o.reg); err != nil {
		return nil, err
	}
	return o, nil
}

// startRecorder starts the gateway's per-app recorder, flushing to st.
func (o *observability) startRecorder(cfg *devConfig, st *store.Store, log *slog.Logger) error {
	if !cfg.AppMetrics {
		return nil
	}
	rec, err := metrics.New(metrics.Config{
		Sink: st, FlushInterval: cfg.MetricsFlush, ProbeInterval: cfg.HealthProbe, ProbeTimeout: 5 * time.Second,
		Registerer: o.reg, Logger: log,
	})
	if err != nil {
		return err
	}
	rec.Start()
	o.rec = rec
	return nil
}

// gatewayRecorder is the gateway's Recorder, or nil when app metrics are off.
func (o *observability) gatewayRecorder() gateway.Recorder {
	if o.rec == nil {
		return nil
	}
	return o.rec
}

// poolHooks returns the pool's ColdStart and Event callbacks: cold starts
// and events go to the logs (logColdStart, logEvent) as before, cold
// starts also to the operators' metrics, crashes also to the recorder's
// health reports.
func (o *observability) poolHooks(p func() *pool.Pool, logColdStart func(string, *v1.ColdStart),
	logEvent func(string, *v1.Event)) (func(string, *v1.ColdStart), func(string, *v1.Event), error) {
	cold, err := telemetry.NewPool(o.reg, func() telemetry.PoolCounts {
		if p() == nil {
			return telemetry.PoolCounts{} // scraped before the pool started
		}
		s := p().Stats()
		return telemetry.PoolCounts{Warm: s.Warm, Claimed: s.Claimed, Starting: s.Starting, Total: s.Total}
	})
	if err != nil {
		return nil, nil, err
	}
	coldStart := func(appID string, cs *v1.ColdStart) {
		logColdStart(appID, cs)
		cold.Observe(cs)
	}
	event := func(appID string, e *v1.Event) {
		logEvent(appID, e)
		if o.rec != nil && e.GetKind() == v1.EventKind_EVENT_KIND_CRASHED {
			o.rec.Crashed(appID, strings.TrimPrefix(e.GetMessage(), "crashed: "))
		}
	}
	return coldStart, event, nil
}

// claimed tells the recorder that r now serves appID, and when it stops.
func (o *observability) claimed(appID string, r *pool.Runner) {
	if o.rec == nil {
		return
	}
	addr := r.Addr()
	o.rec.RunnerUp(appID, addr)
	go func() {
		<-r.Done()
		o.rec.RunnerDown(appID, addr)
	}()
}

// close flushes what the recorder still holds.
func (o *observability) close() {
	if o.rec == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o.rec.Close(ctx)
}

// serveInternal serves /metrics, /healthz and /readyz on addr (none when
// addr is empty) and returns the bound address and a stop function.
func (o *observability) serveInternal(addr string, log *slog.Logger, checks ...telemetry.Check) (net.Addr, func(), error) {
	if addr == "" {
		return nil, func() {}, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	srv := &http.Server{Handler: telemetry.Handler(o.reg, checks...), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("internal listener stopped", "err", err)
		}
	}()
	return l.Addr(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// readiness are the checks of /readyz: the platform database and Redis
// answer. (The internal listener starts once everything else has.)
func readiness(mc *mongo.Client, rdb *redis.Client) []telemetry.Check {
	return []telemetry.Check{
		{Name: "mongodb", Fn: func(ctx context.Context) error { return mc.Ping(ctx, nil) }},
		{Name: "redis", Fn: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
	}
}
