package telemetry

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
)

// RPC counts and times every Connect call a server handles. It implements
// connect.Interceptor.
type RPC struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

var _ connect.Interceptor = (*RPC)(nil)

// NewRPC registers the RPC metrics in reg.
func NewRPC(reg prometheus.Registerer) (*RPC, error) {
	r := &RPC{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gofastapi", Subsystem: "rpc", Name: "requests_total",
			Help: "Connect RPCs handled, by procedure and outcome code (ok, or the Connect error code).",
		}, []string{"procedure", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "gofastapi", Subsystem: "rpc", Name: "duration_seconds",
			Help:    "Time to handle a Connect RPC (a streaming one: until its stream ends), by procedure.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}, []string{"procedure"}),
	}
	for _, c := range []prometheus.Collector{r.calls, r.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *RPC) observe(procedure string, start time.Time, err error) {
	code := "ok"
	if err != nil {
		code = connect.CodeOf(err).String()
		var ce *connect.Error
		if !errors.As(err, &ce) && errors.Is(err, context.Canceled) {
			code = connect.CodeCanceled.String()
		}
	}
	r.calls.WithLabelValues(procedure, code).Inc()
	r.duration.WithLabelValues(procedure).Observe(time.Since(start).Seconds())
}

// WrapUnary counts a unary call.
func (r *RPC) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		start := time.Now()
		res, err := next(ctx, req)
		r.observe(req.Spec().Procedure, start, err)
		return res, err
	}
}

// WrapStreamingClient leaves client calls alone: only served calls count.
func (r *RPC) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler counts a streaming call when it ends.
func (r *RPC) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		start := time.Now()
		err := next(ctx, conn)
		r.observe(conn.Spec().Procedure, start, err)
		return err
	}
}
