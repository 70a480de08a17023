// Package local is the pool backend that runs each runner as a local
// process (`gofastapi runner`) in a private working directory.
package local

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/gofastapi/gofastapi/pool"
	"github.com/gofastapi/gofastapi/runner/launch"
)

// Config configures the local backend.
type Config struct {
	// Command starts a runner agent, for example {"/usr/bin/gofastapi", "runner"}.
	Command []string
	// Python is the interpreter the runners use.
	Python string
	// Dir holds one private working directory per runner.
	Dir string
	// RedisURL lets runners read bundles (a read-only user).
	RedisURL string
	// ReadyTimeout bounds loading an app inside a runner.
	ReadyTimeout time.Duration
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	switch {
	case len(c.Command) == 0:
		return errors.New("local: Config.Command is empty")
	case c.Python == "" || c.Dir == "" || c.RedisURL == "":
		return errors.New("local: Config.Python, Dir and RedisURL are required")
	case c.ReadyTimeout <= 0:
		return errors.New("local: Config.ReadyTimeout must be positive")
	}
	return nil
}

// Backend starts runners as child processes.
type Backend struct{ cfg Config }

var _ pool.Backend = (*Backend)(nil)

// New returns a local Backend.
func New(cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	return &Backend{cfg: cfg}, nil
}

// Start implements pool.Backend.
func (b *Backend) Start(ctx context.Context) (pool.Instance, error) {
	dir, err := os.MkdirTemp(b.cfg.Dir, "runner-")
	if err != nil {
		return nil, err
	}
	r, err := launch.Start(ctx, launch.Config{
		Command:      b.cfg.Command,
		Python:       b.cfg.Python,
		WorkDir:      dir,
		RedisURL:     b.cfg.RedisURL,
		ReadyTimeout: b.cfg.ReadyTimeout,
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return r, nil
}
