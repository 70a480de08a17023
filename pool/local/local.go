// Package local is the pool backend that runs each runner as a local
// process (`gofastapi runner`) in a private working directory.
//
// Each runner's Python is forked from one zygote per Backend (see
// launch.Zygote), which imported the framework once: a new runner costs
// milliseconds instead of a fresh interpreter's half second of CPU. The
// zygote starts with the first Start, and again with the first Start after
// it died; runners already forked do not depend on it. Working directories
// (and the zygote's socket) go to a private directory on the tmpfs at
// /dev/shm when there is one, where writing an app is about ten times
// faster than on disk; else under Config.Dir. Close stops the zygote and
// removes the tmpfs directory; New removes those that Backends of processes
// killed before Close left behind. With Config.BundleCacheBytes and
// RunnerUIDs, the tmpfs directory also holds the host's bundle cache (see
// bundlecache), which runners link app files from: filled by the platform
// at deploy (BundleCache) and by the Backend after a start that fetched.
package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/gofastapi/gofastapi/pool"
	"github.com/gofastapi/gofastapi/runner"
	"github.com/gofastapi/gofastapi/runner/bundlecache"
	"github.com/gofastapi/gofastapi/runner/launch"
)

// Config configures the local backend.
type Config struct {
	// Command starts a runner agent, for example {"/usr/bin/gofastapi", "runner"}.
	Command []string
	// Python is the interpreter the runners use.
	Python string
	// Dir holds one private working directory per runner, unless a tmpfs
	// is available (see the package doc).
	Dir string
	// RedisURL lets runners read bundles (a read-only user).
	RedisURL string
	// ReadyTimeout bounds loading an app inside a runner.
	ReadyTimeout time.Duration
	// RunnerUIDs, when Count is not zero, makes each runner's Python run
	// as a user of its own from this range (uid and gid Base+i), taken in
	// turn: the platform must run as root. Its working directory is then
	// outside Dir, which stays private to the platform (see Backend).
	RunnerUIDs UIDRange
	// AppMemory bounds each app's data memory, in bytes (see
	// launch.Config.AppMemory): zero is the runners' default, negative none.
	AppMemory int64
	// BundleCacheBytes, when not zero and RunnerUIDs is set, keeps app
	// versions' files on this host (see bundlecache), at most this many
	// bytes: those the platform puts in (BundleCache, at deploy) and those
	// of each start that had to fetch them. A runner links them instead of
	// fetching its bundle. Without RunnerUIDs there is no cache: Python
	// would run as the user that owns the shared files.
	BundleCacheBytes int64
	// Logger receives background errors (filling the bundle cache); nil
	// discards them.
	Logger *slog.Logger
	// NoZygote makes every runner start a Python of its own instead of
	// forking it from the Backend's zygote: about half a second of CPU per
	// runner instead of a few milliseconds. For comparison and debugging;
	// outside Linux there is no zygote in any case.
	NoZygote bool
}

// UIDRange is Count user ids from Base.
type UIDRange struct{ Base, Count uint32 }

// Validate reports whether c is usable.
func (c Config) Validate() error {
	switch {
	case len(c.Command) == 0:
		return errors.New("local: Config.Command is empty")
	case c.Python == "" || c.Dir == "" || c.RedisURL == "":
		return errors.New("local: Config.Python, Dir and RedisURL are required")
	case c.ReadyTimeout <= 0:
		return errors.New("local: Config.ReadyTimeout must be positive")
	case c.RunnerUIDs.Count > 0 && (c.RunnerUIDs.Base == 0 || c.RunnerUIDs.Base+c.RunnerUIDs.Count < c.RunnerUIDs.Base):
		return errors.New("local: Config.RunnerUIDs must be positive and not wrap around")
	case c.RunnerUIDs.Count > 0 && os.Geteuid() != 0:
		return errors.New("local: Config.RunnerUIDs needs the platform to run as root")
	}
	return nil
}

// Backend starts runners as child processes. Its methods are safe for
// concurrent use.
type Backend struct {
	cfg      Config
	workRoot string // parent of the runners' and the zygote's directories
	ownRoot  bool   // workRoot was made by New on a tmpfs; Close removes it

	ctx    context.Context // ends at Close; bounds zygote starts
	cancel context.CancelFunc
	bg     sync.WaitGroup // zygote starts and stops in flight

	cache *bundleCache // nil: none

	mu      sync.Mutex
	nextUID uint32       // index in RunnerUIDs of the next runner's user
	zygote  *zygoteStart // the latest zygote or its start; nil before the first Start
	closed  bool
}

// zygoteStart is one start of the zygote, shared by the Starts waiting for it.
type zygoteStart struct {
	done chan struct{} // closed when the start finished; then z or err is set
	z    *launch.Zygote
	err  error
}

// usable reports whether zs is starting or has started a zygote that still runs.
func (zs *zygoteStart) usable() bool {
	select {
	case <-zs.done:
	default:
		return true
	}
	if zs.err != nil {
		return false
	}
	select {
	case <-zs.z.Done():
		return false
	default:
		return true
	}
}

var _ pool.Backend = (*Backend)(nil)

// New returns a local Backend. It starts no process: the zygote starts with
// the first Start.
func New(cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	b := &Backend{cfg: cfg, workRoot: cfg.Dir}
	if cfg.RunnerUIDs.Count > 0 {
		// Far from where another platform on this machine starts.
		b.nextUID = rand.Uint32N(cfg.RunnerUIDs.Count)
	}
	if dir, ok := tmpfsDir(); ok {
		b.workRoot, b.ownRoot = dir, true
	} else if cfg.RunnerUIDs.Count > 0 {
		// Runners' users cannot pass through Dir (in the platform's private
		// data directory, mode 0700): their directories go elsewhere.
		dir, err := os.MkdirTemp("", "gofastapi-runners-")
		if err != nil {
			return nil, err
		}
		b.workRoot, b.ownRoot = dir, true
	}
	if cfg.RunnerUIDs.Count > 0 {
		// Runners' users may pass through to their own directories (each
		// 0700, their own), but not list the others.
		if err := os.Chmod(b.workRoot, 0o711); err != nil {
			return nil, err
		}
	}
	if cfg.RunnerUIDs.Count > 0 && cfg.BundleCacheBytes > 0 {
		log := cfg.Logger
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		c, err := newBundleCache(b.workRoot, cfg.BundleCacheBytes, cfg.RedisURL, log)
		if err != nil {
			if b.ownRoot {
				os.RemoveAll(b.workRoot)
			}
			return nil, err
		}
		b.cache = c
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b, nil
}

// BundleCache is the host's bundle cache, for the platform to put the
// versions it deploys in; nil when there is none (see
// Config.BundleCacheBytes).
func (b *Backend) BundleCache() *bundlecache.Cache {
	if b.cache == nil {
		return nil
	}
	return b.cache.Cache
}

// background runs f in a goroutine that Close waits for, unless Close has
// begun; f's context ends at Close.
func (b *Backend) background(f func(ctx context.Context)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.bg.Add(1)
	go func() {
		defer b.bg.Done()
		f(b.ctx)
	}()
}

// Start implements pool.Backend.
func (b *Backend) Start(ctx context.Context) (pool.Instance, error) {
	var socket string
	if !b.cfg.NoZygote && zygoteSupported {
		var err error
		if socket, err = b.zygoteSocket(ctx); err != nil {
			return nil, err
		}
	}
	runAs, err := b.runAs()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(b.workRoot, "runner-")
	if err != nil {
		return nil, err
	}
	r, err := launch.Start(ctx, launch.Config{
		Command:      b.cfg.Command,
		Python:       b.cfg.Python,
		Zygote:       socket,
		WorkDir:      dir,
		RedisURL:     b.cfg.RedisURL,
		ReadyTimeout: b.cfg.ReadyTimeout,
		RunAs:        runAs,
		BundleCache:  b.cacheRoot(),
		DepsCache:    b.depsCache(),
		AppMemory:    b.cfg.AppMemory,
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if b.cache != nil {
		return cachingRunner{Runner: r, b: b}, nil
	}
	return r, nil
}

// depsCache is where the runners share apps' dependencies: only when
// they run as users of their own, who cannot change the shared files.
func (b *Backend) depsCache() string {
	if b.cfg.RunnerUIDs.Count == 0 {
		return ""
	}
	return filepath.Join(b.workRoot, "deps")
}

func (b *Backend) cacheRoot() string {
	if b.cache == nil {
		return ""
	}
	return b.cache.Root()
}

// runAs returns the user of the next runner's Python, nil if runners run
// as the platform's user. Users are taken in turn, from a random place in
// the range, and one that has a process is passed over: so a user is used
// again only after Count other runners started, by then the runner that
// had it was long stopped, and every process of its user with it (see
// runner.RunAs.KillAll), its app's daemons included; and a user another
// platform on this machine gave a runner of its own is not given too,
// which would let the two apps at each other, and have either runner's
// end kill the other's.
func (b *Backend) runAs() (*runner.RunAs, error) {
	r := b.cfg.RunnerUIDs
	if r.Count == 0 {
		return nil, nil
	}
	busy, err := usersWithProcesses()
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for range r.Count {
		uid := r.Base + b.nextUID
		b.nextUID = (b.nextUID + 1) % r.Count
		if !busy[uid] {
			return &runner.RunAs{UID: uid, GID: uid}, nil
		}
	}
	return nil, fmt.Errorf("local: every runner user (%d from %d, --runner-uids) has a process: stop some runners or give a larger range", r.Count, r.Base)
}

// usersWithProcesses lists the users that have a process now, as the
// owners of /proc's process directories.
func usersWithProcesses() (map[uint32]bool, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("local: list processes: %w", err)
	}
	users := map[uint32]bool{}
	for _, e := range entries {
		if c := e.Name()[0]; c < '0' || c > '9' {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // the process is gone
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			users[st.Uid] = true
		}
	}
	return users, nil
}

// zygoteSocket returns the socket of a running zygote, starting one if there
// is none (or it died). A start is not bound to ctx, which is one caller's:
// other Starts may be waiting for the same zygote.
func (b *Backend) zygoteSocket(ctx context.Context) (string, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return "", ErrClosed
	}
	zs := b.zygote
	if zs == nil || !zs.usable() {
		if zs != nil && zs.z != nil {
			// It died; Stop removes its directory.
			b.bg.Add(1)
			go func(z *launch.Zygote) {
				defer b.bg.Done()
				z.Stop()
			}(zs.z)
		}
		zs = &zygoteStart{done: make(chan struct{})}
		b.zygote = zs
		b.bg.Add(1)
		go b.startZygote(zs)
	}
	b.mu.Unlock()
	select {
	case <-zs.done:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	if zs.err != nil {
		return "", zs.err
	}
	return zs.z.Socket(), nil
}

func (b *Backend) startZygote(zs *zygoteStart) {
	defer b.bg.Done()
	defer close(zs.done)
	dir, err := os.MkdirTemp(b.workRoot, "zygote-")
	if err != nil {
		zs.err = err
		return
	}
	zs.z, zs.err = launch.StartZygote(b.ctx, launch.ZygoteConfig{Python: b.cfg.Python, Dir: dir})
	if zs.err != nil {
		os.RemoveAll(dir)
	}
}

// Close stops the zygote and removes the Backend's tmpfs directory. Call it
// after the runners were stopped (the pool's Close): runners forked from
// the zygote would survive it, but their working directories would not.
// Start fails with ErrClosed afterwards. Close is idempotent.
func (b *Backend) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	zs := b.zygote
	b.mu.Unlock()

	b.cancel()
	b.bg.Wait()
	if zs != nil && zs.z != nil {
		zs.z.Stop()
	}
	if b.cache != nil {
		b.cache.rdb.Close()
	}
	if b.ownRoot {
		os.RemoveAll(b.workRoot)
	}
}
