package launch

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gofastapi/gofastapi/runner"
)

// Config says how to start one runner agent.
type Config struct {
	// Command is the argv that starts the agent, e.g.
	// {"/path/bin/gofastapi", "runner"}; Start appends --control, --python,
	// --workdir, --app-socket, --ready-timeout and --zygote. With
	// --app-socket the app listens on a Unix socket in WorkDir, which only
	// root and the runner's user may open: other apps on the machine cannot
	// reach it, only the gateway can.
	Command []string
	// Env is extra environment for the agent, as "KEY=value", for tests and
	// wrappers. The agent otherwise gets only PATH; it passes Python a
	// scrubbed environment of its own in any case.
	Env []string
	// Python is the interpreter; empty means the agent's default. Unused
	// when Zygote is set.
	Python string
	// Zygote is the socket of a running Zygote (see StartZygote). If set,
	// the agent has the zygote fork the runner's Python, which then costs a
	// few milliseconds instead of a fresh interpreter's import of the
	// framework; if empty, the agent starts Python itself.
	Zygote string
	// WorkDir is the runner's private directory: created by Start, removed by
	// Stop. It must be an absolute path, short enough for the app's socket
	// (WorkDir/app.sock) to take at most 107 bytes. The app's files are written here on
	// the cold-start path, so a tmpfs (such as a directory under /dev/shm)
	// makes that write about ten times faster than a disk filesystem.
	WorkDir string
	// RedisURL is where bundles are read from; it is written to the agent's
	// stdin, never to argv or the environment.
	RedisURL string
	// RunAs, when set, is the unprivileged user the runner's Python runs
	// as (the agent stays as it is, which must then be root). WorkDir's
	// parents must let that user through (mode 0711 or wider).
	RunAs *runner.RunAs
	// BundleCache, when set, is the host's bundle cache (see bundlecache),
	// on WorkDir's file system: the agent links an app's files from it when
	// it holds them. It needs RunAs.
	BundleCache string
	// DepsCache, when set, is where the host's runners share apps'
	// dependencies, unpacked (the agent's --deps-cache); it needs RunAs.
	DepsCache string
	// ReadyTimeout bounds loading the app and its first answer; zero means
	// the agent's default (10s).
	ReadyTimeout time.Duration
	// StartPriority bounds how long the app runs at real-time priority
	// from its load to its first answer, which needs an agent running as
	// root (see the agent's --start-priority); zero means the agent's
	// default (20ms), a negative value not at all.
	StartPriority time.Duration
	// AppMemory bounds the data memory of the app's process, in bytes (see
	// runner.AppLimits); zero means the agent's default (2 GiB), a
	// negative value no limit.
	AppMemory int64
	// Log is called for each app log line, from one goroutine, in order; it
	// should return quickly, as the app's output waits for it. It may be nil
	// and may be replaced later with SetLog.
	Log func(t time.Time, stream, text string)
}

// Validate reports the first missing or bad field.
func (c Config) Validate() error {
	switch {
	case len(c.Command) == 0 || c.Command[0] == "":
		return errors.New("launch: Command is required")
	case c.WorkDir == "" || !filepath.IsAbs(c.WorkDir):
		return fmt.Errorf("launch: WorkDir %q must be an absolute path", c.WorkDir)
	case filepath.Dir(filepath.Clean(c.WorkDir)) == filepath.Clean(c.WorkDir):
		// Stop removes WorkDir; refusing "/" keeps a typo from deleting a tree.
		return fmt.Errorf("launch: WorkDir %q must not be a root directory", c.WorkDir)
	case c.RedisURL == "":
		return errors.New("launch: RedisURL is required")
	case c.ReadyTimeout < 0:
		return errors.New("launch: ReadyTimeout must not be negative")
	case c.Zygote != "" && !filepath.IsAbs(c.Zygote):
		return fmt.Errorf("launch: Zygote %q must be an absolute path", c.Zygote)
	case c.BundleCache != "" && !filepath.IsAbs(c.BundleCache):
		return fmt.Errorf("launch: BundleCache %q must be an absolute path", c.BundleCache)
	case c.DepsCache != "" && (!filepath.IsAbs(c.DepsCache) || c.RunAs == nil):
		return fmt.Errorf("launch: DepsCache %q must be an absolute path, and needs RunAs", c.DepsCache)
	case c.BundleCache != "" && c.RunAs == nil:
		return errors.New("launch: BundleCache needs RunAs: the app's user must not own the cached files")
	}
	for _, kv := range c.Env {
		if !strings.Contains(kv, "=") {
			return fmt.Errorf("launch: Env entry %q is not KEY=value", kv)
		}
	}
	return nil
}

// args returns the agent's argv after Command[0].
func (c Config) args() []string {
	args := append([]string{}, c.Command[1:]...)
	args = append(args, "--control", "127.0.0.1:0", "--workdir", c.WorkDir, "--app-socket")
	if c.Python != "" {
		args = append(args, "--python", c.Python)
	}
	if c.ReadyTimeout > 0 {
		args = append(args, "--ready-timeout", c.ReadyTimeout.String())
	}
	if c.Zygote != "" {
		args = append(args, "--zygote", c.Zygote)
	}
	if c.RunAs != nil {
		args = append(args, "--run-as", c.RunAs.String())
	}
	if c.DepsCache != "" {
		args = append(args, "--deps-cache", c.DepsCache)
	}
	if c.BundleCache != "" {
		args = append(args, "--bundle-cache", c.BundleCache)
	}
	switch {
	case c.AppMemory > 0:
		args = append(args, "--app-memory", strconv.FormatInt(c.AppMemory, 10))
	case c.AppMemory < 0:
		args = append(args, "--app-memory", "0")
	}
	switch {
	case c.StartPriority > 0:
		args = append(args, "--start-priority", c.StartPriority.String())
	case c.StartPriority < 0:
		args = append(args, "--start-priority", "0")
	}
	return args
}
