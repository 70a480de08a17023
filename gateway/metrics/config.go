package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// Sink stores what the Recorder flushes. Each call gets only non-empty
// batches. Errors are logged and the batch is dropped: metrics must never
// hold up or break serving.
type Sink interface {
	WriteWindows(ctx context.Context, ws []*v1.MetricsWindow) error
	WriteErrors(ctx context.Context, es []*v1.RequestError) error
	WriteHealth(ctx context.Context, hs []*v1.HealthReport) error
}

// Config configures a Recorder.
type Config struct {
	// Sink receives each flush.
	Sink Sink
	// FlushInterval is how often the counters are flushed to Sink.
	FlushInterval time.Duration
	// MaxErrors is how many error answers per app are kept between two
	// flushes (the latest ones); 0 means 50.
	MaxErrors int
	// ProbeInterval is how often each running app's GET /health is
	// requested; ProbeTimeout bounds each probe.
	ProbeInterval, ProbeTimeout time.Duration
	// Registerer, when set, gets the operators' request metrics
	// (Prometheus): a latency histogram per status class.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Validate reports every missing or unusable field.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, problem string) {
		errs = append(errs, fmt.Errorf("%w: %s %s", ErrInvalidConfig, field, problem))
	}
	if c.Sink == nil {
		bad("Sink", "is nil")
	}
	if c.FlushInterval <= 0 {
		bad("FlushInterval", "must be positive")
	}
	if c.MaxErrors < 0 {
		bad("MaxErrors", "must not be negative")
	}
	if c.ProbeInterval <= 0 {
		bad("ProbeInterval", "must be positive")
	}
	if c.ProbeTimeout <= 0 {
		bad("ProbeTimeout", "must be positive")
	}
	if c.Logger == nil {
		bad("Logger", "is nil")
	}
	return errors.Join(errs...)
}
