package pool

import (
	"context"
	"time"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// Backend creates generic runners.
type Backend interface {
	// Start creates a runner and returns once it is warm: its Python has
	// imported the framework and waits for one Specialize.
	Start(ctx context.Context) (Instance, error)
}

// Instance is one runner made by a Backend.
type Instance interface {
	// AppAddr is host:port of the app listener: valid once specialized,
	// and before that when the backend knows it (else empty).
	AppAddr() string
	// Specialize loads one app version; it may be called once.
	Specialize(ctx context.Context, req *v1.SpecializeRequest) (*v1.SpecializeResponse, error)
	// SetLog directs the runner's app log lines to f.
	SetLog(f func(t time.Time, stream, text string))
	// Stop ends the runner, letting requests in flight finish within grace.
	Stop(grace time.Duration)
	// Done is closed once the runner has exited.
	Done() <-chan struct{}
	// ExitErr says why the runner exited, after Done.
	ExitErr() error
}
