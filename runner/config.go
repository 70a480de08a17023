package runner

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"
)

// maxSecretsLine bounds the stdin line so a wrong stdin cannot make the agent
// read without end.
const maxSecretsLine = 64 << 10

// config is the agent's configuration: flags from argv, secrets from stdin.
type config struct {
	control      string
	python       string
	workdir      string
	readyTimeout time.Duration
	// zygote, if set, is the Unix socket of the zygote that forks this
	// runner's Python; python is then unused.
	zygote   string
	redisURL string
	// appHost is the address the app listens on; "" is 127.0.0.1. A
	// runner in a pod listens on the pod's address (0.0.0.0) so that the
	// gateway reaches it.
	appHost string
	// appSocket has the app listen on a Unix socket in the workdir (see
	// socketPath) instead of TCP.
	appSocket bool
	// bundleCache, if set, is the host's bundle cache (see bundlecache),
	// from which Specialize links an app's files when it holds them.
	bundleCache string
	// depsCache, if set, is where the host keeps apps' dependencies
	// unpacked, shared by its runners (see prepareDeps); else each runner
	// unpacks them in its workdir.
	depsCache string
	// depsKeep is how long a set in depsCache that no runner uses is kept
	// after its last use.
	depsKeep time.Duration
	// secretsFile, if set, holds the Secrets line instead of stdin (a
	// mounted Kubernetes Secret: a pod has no stdin to write to).
	secretsFile string
	// controlTokenSHA256, if set, is the hex SHA-256 of the token every
	// RunnerService call must carry (see controlDigest): a pod's, which
	// the pool puts in the pod's arguments instead of the token itself.
	controlTokenSHA256 string
	// runAs, when set, is the user Python runs as (see RunAs).
	runAs *RunAs
	// startPriority is how long, at most, Python runs at real-time
	// priority from the load command (see raiseForStart); 0: not at all.
	startPriority time.Duration
	// limits bound the app's process from its load on (see AppLimits).
	limits AppLimits
	// cpu bounds, in cores, the CPU the app's processes take together,
	// with runAs (see appGroup); 0: no bound.
	cpu float64
	// confine has the runner's Python confine itself (see runnerEnv and
	// bootstrap.py's confine_runner and forbid_unix_sockets).
	confine bool
	// disk, with runAs, bounds the runner's directory: a tmpfs of this
	// many bytes (see mountWorkdir); 0 leaves it on the file system below.
	disk int64
}

// AppLimits are the resource limits a runner's Python takes before it
// imports the app, so that one app's leak, fork loop or runaway file takes
// down that app alone; 0 leaves one unlimited.
type AppLimits struct {
	// Memory bounds the process's data (heap and other private writable
	// memory, as address space: RLIMIT_DATA), in bytes. Past it an
	// allocation fails: MemoryError in the app.
	Memory int64 `json:"memory,omitempty"`
	// Processes bounds the processes and threads of the app's user
	// (RLIMIT_NPROC). It is set only when Python runs as a user of its own
	// (--run-as), since the limit counts everything that user runs.
	Processes int64 `json:"processes,omitempty"`
	// FileSize bounds each file the app writes (RLIMIT_FSIZE), in bytes.
	// Past it a write fails: OSError (EFBIG) in the app.
	FileSize int64 `json:"file_size,omitempty"`
}

// Default app limits: far above what a small app needs (about 60 MB), and
// far below what would take the machine with it.
const (
	defaultAppMemory    = 2 << 30
	defaultAppProcesses = 512
	defaultAppFileSize  = 1 << 30
	defaultAppDisk      = 256 << 20
	defaultAppCPU       = 0 // see appGroup
)

// parseFlags reads the agent's flags from args.
func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("runner", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := config{}
	fs.StringVar(&c.control, "control", "127.0.0.1:0", "address of the agent's control listener")
	fs.StringVar(&c.python, "python", "/usr/bin/python3", "Python interpreter")
	fs.StringVar(&c.workdir, "workdir", "", "private directory for the app's files (required)")
	fs.DurationVar(&c.readyTimeout, "ready-timeout", 10*time.Second, "bound on loading the app and its first answer")
	fs.StringVar(&c.zygote, "zygote", "", "Unix socket of a zygote to fork Python from, instead of starting --python")
	fs.StringVar(&c.appHost, "app-host", "", "address the app listens on (default 127.0.0.1; 0.0.0.0 in a pod)")
	fs.BoolVar(&c.appSocket, "app-socket", false, "have the app listen on a Unix socket, app.sock in --workdir, instead of TCP: only root and the runner's user can open it, not other apps")
	fs.StringVar(&c.bundleCache, "bundle-cache", "", "the host's bundle cache: link an app's files from it when it holds them (needs --run-as)")
	fs.StringVar(&c.depsCache, "deps-cache", "", "where the host's runners share apps' dependencies, unpacked (needs --run-as: the apps' users must not own them)")
	fs.DurationVar(&c.depsKeep, "deps-cache-keep", 24*time.Hour, "how long dependencies in --deps-cache that no runner uses are kept after their last use")
	fs.DurationVar(&c.startPriority, "start-priority", 20*time.Millisecond, "at most how long the app runs at real-time priority from its load to its first answer (needs CAP_SYS_NICE; 0: never)")
	fs.StringVar(&c.secretsFile, "secrets-file", "", "read the secrets line from this file instead of stdin")
	fs.StringVar(&c.controlTokenSHA256, "control-token-sha256", "", "take RunnerService calls only with a bearer token whose SHA-256 is this (hex); the pool derives each pod's token and puts only its hash in the pod")
	fs.Int64Var(&c.limits.Memory, "app-memory", defaultAppMemory, "bytes of data memory the app's process may have (RLIMIT_DATA), and with --run-as, where the machine has cgroup v1, all its processes and files together (0: no limit)")
	fs.Int64Var(&c.limits.Processes, "app-processes", defaultAppProcesses, "processes and threads the app may have, with --run-as (RLIMIT_NPROC; 0: no limit)")
	fs.Int64Var(&c.limits.FileSize, "app-file-size", defaultAppFileSize, "bytes each file the app writes may have (RLIMIT_FSIZE; 0: no limit)")
	fs.Float64Var(&c.cpu, "app-cpu", defaultAppCPU, "cores the app's processes may take together, with --run-as, where the machine has cgroup v1 (0: no limit; a cpu group costs the app throughput)")
	fs.Int64Var(&c.disk, "app-disk", defaultAppDisk, "bytes the runner's directory may hold, with --run-as: a tmpfs of its own (0: no limit)")
	fs.BoolVar(&c.confine, "confine", true, "confine the app: no writing, making or removing files outside the runner's directory, no reading outside it and the system's and Python's directories, no TCP listener of its own, no signals outside (Landlock, as far as the kernel has it), and no Unix sockets (seccomp)")
	fs.Func("run-as", "UID:GID Python runs as (the agent needs root for it)", func(s string) error {
		r, err := ParseRunAs(s)
		if err != nil {
			return err
		}
		c.runAs = &r
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return c, nil
}

// readSecrets reads the secrets line from stdin.
func readSecrets(stdin io.Reader) (Secrets, error) {
	line, err := bufio.NewReader(io.LimitReader(stdin, maxSecretsLine)).ReadBytes('\n')
	if err != nil && (!errors.Is(err, io.EOF) || len(line) == 0) {
		return Secrets{}, fmt.Errorf("read secrets from stdin: %w", err)
	}
	var s Secrets
	if err := json.Unmarshal(line, &s); err != nil {
		return Secrets{}, fmt.Errorf("parse secrets from stdin: %w", err)
	}
	return s, nil
}

// validate reports the first missing or bad setting.
func (c config) validate() error {
	switch {
	case c.workdir == "":
		return errors.New("--workdir is required")
	case c.python == "":
		return errors.New("--python is required")
	case c.readyTimeout <= 0:
		return errors.New("--ready-timeout must be positive")
	case c.depsCache != "" && c.depsKeep <= 0:
		return errors.New("--deps-cache-keep must be positive")
	case c.startPriority < 0:
		return errors.New("--start-priority must not be negative (0 turns it off)")
	case c.limits.Memory < 0 || c.limits.Processes < 0 || c.limits.FileSize < 0 || c.disk < 0 || c.cpu < 0:
		return errors.New("--app-memory, --app-processes, --app-file-size, --app-disk and --app-cpu must not be negative (0: no limit)")
	case c.redisURL == "":
		return errors.New("redis_url missing from stdin")
	case c.zygote != "" && !filepath.IsAbs(c.zygote):
		return fmt.Errorf("--zygote %q must be an absolute path", c.zygote)
	case c.bundleCache != "" && !filepath.IsAbs(c.bundleCache):
		return fmt.Errorf("--bundle-cache %q must be an absolute path", c.bundleCache)
	case c.depsCache != "" && (!filepath.IsAbs(c.depsCache) || c.runAs == nil):
		return fmt.Errorf("--deps-cache %q must be an absolute path, and needs --run-as: the apps' users must not own the shared files", c.depsCache)
	case c.bundleCache != "" && c.runAs == nil:
		// Python could change the shared files through its links if it ran
		// as the user that owns them.
		return errors.New("--bundle-cache needs --run-as: the app's user must not own the cached files")
	case c.zygote != "" && c.appHost != "":
		return errors.New("--app-host needs a runner that starts its own Python: leave out --zygote")
	case c.controlTokenSHA256 != "" && !isSHA256Hex(c.controlTokenSHA256):
		return fmt.Errorf("--control-token-sha256 %q must be a SHA-256 in hex (64 characters 0-9a-f)", c.controlTokenSHA256)
	case c.appSocket && c.appHost != "":
		return errors.New("--app-socket and --app-host both say where the app listens: give one")
	case c.appSocket && !filepath.IsAbs(c.workdir):
		return fmt.Errorf("--workdir %q must be an absolute path with --app-socket: the gateway opens the socket by its path", c.workdir)
	case c.appSocket && len(c.socketPath()) > maxSocketPath:
		return fmt.Errorf("--workdir %q is too long for --app-socket: %s is over the %d bytes a Unix socket's path may have", c.workdir, c.socketPath(), maxSocketPath)
	}
	return nil
}

// socketPath is the app's Unix socket with --app-socket. It is in the
// workdir, which only the runner's user (and root) may enter: so no other
// app can reach this one but through the gateway.
func (c config) socketPath() string { return filepath.Join(c.workdir, "app.sock") }
