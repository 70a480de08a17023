package pool

import (
	"errors"
	"log/slog"
	"time"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// LogFunc receives the log lines of claimed runners and the pool's events
// about them (stream "platform").
type LogFunc func(appID string, t time.Time, stream, text string)

// Config configures a Pool.
type Config struct {
	Backend Backend
	// Warm is how many generic runners are kept ready.
	Warm int
	// Max caps the runners that exist at once.
	Max int
	// IdleTimeout is how long an app may go without requests before its
	// runner is destroyed.
	IdleTimeout time.Duration
	// StartTimeout bounds starting one runner.
	StartTimeout time.Duration
	// SpecializeTimeout bounds loading an app into a runner.
	SpecializeTimeout time.Duration
	// StopGrace is how long a released runner may finish requests in flight.
	StopGrace time.Duration
	// Log receives the apps' log lines and the pool's own lines about
	// them. The pool's records (its Log lines, ColdStart and Event) are
	// passed on one at a time, in order, from a goroutine of the pool's,
	// shortly after the fact: a cold start's caller does not wait for its
	// record. Close returns after the last one.
	Log LogFunc
	// ColdStart, when set, receives a record of every cold start.
	ColdStart func(appID string, cs *v1.ColdStart)
	// Event, when set, receives the lifecycle events of apps: cold started
	// (with phase timings), start failed, crashed, scaled to zero.
	Event  func(appID string, e *v1.Event)
	Logger *slog.Logger
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	switch {
	case c.Backend == nil:
		return errors.New("pool: Config.Backend is nil")
	case c.Warm < 0:
		return errors.New("pool: Config.Warm must not be negative")
	case c.Max < 1 || c.Max < c.Warm:
		return errors.New("pool: Config.Max must be at least 1 and at least Warm")
	case c.IdleTimeout <= 0, c.StartTimeout <= 0, c.SpecializeTimeout <= 0, c.StopGrace <= 0:
		return errors.New("pool: IdleTimeout, StartTimeout, SpecializeTimeout and StopGrace must be positive")
	case c.Log == nil || c.Logger == nil:
		return errors.New("pool: Config.Log and Config.Logger are required")
	}
	return nil
}
