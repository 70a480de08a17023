package runner

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/gofastapi/gofastapi/proto/appaddr"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

// compressMinBytes is the smallest RunnerService answer compressed.
const compressMinBytes = 4 << 10

// Limits of the agent's lifecycle.
const (
	// stopGrace is how long Python may take to finish in-flight requests
	// after SIGTERM before it is killed.
	stopGrace = 10 * time.Second
	// logDrainLimit bounds waiting for Python's last log lines after it
	// exited; a subprocess of the app may hold its stdout open forever.
	logDrainLimit = 2 * time.Second
	// shutdownLimit bounds the wait for an in-flight Specialize to send its
	// answer after Python exited.
	shutdownLimit = 5 * time.Second
)

// Main runs the runner agent until SIGTERM, SIGINT or ctx ends it (then it
// stops Python gracefully and returns nil) or until Python exits by itself
// (then it returns an error, so the process exits non-zero).
//
// args are the flags (--control, --python, --workdir, --ready-timeout,
// --zygote); stdin must carry one Secrets JSON line. On stdout Main writes
// one Handshake JSON line once Python is ready with the framework imported,
// then only app log lines "<unix-nanos> <stream> <text>". Diagnostics go to
// stderr.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	logger := log.New(os.Stderr, "runner: ", 0)
	if err := makeUndumpable(); err != nil {
		return err
	}
	cfg, err := parseFlags(args)
	if err != nil {
		return err
	}
	if cfg.secretsFile != "" {
		f, err := os.Open(cfg.secretsFile)
		if err != nil {
			return fmt.Errorf("--secrets-file: %w", err)
		}
		defer f.Close()
		stdin = f
	}
	sec, err := readSecrets(stdin)
	if err != nil {
		return err
	}
	cfg.redisURL = sec.RedisURL
	if err := cfg.validate(); err != nil {
		return err
	}
	digest, err := controlDigest(sec.ControlToken, cfg.controlTokenSHA256)
	if err != nil {
		return err
	}
	// ParseURL's errors may quote the URL, password included: do not wrap.
	ropts, err := redis.ParseURL(cfg.redisURL)
	if err != nil {
		return errors.New("redis_url from stdin is not a valid redis URL")
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()

	appDir, unmount, err := prepareWorkdir(cfg.workdir, cfg.runAs, cfg.disk)
	if err != nil {
		return err
	}
	defer unmount()
	ln, err := net.Listen("tcp", cfg.control)
	if err != nil {
		return fmt.Errorf("control listener: %w", err)
	}
	defer ln.Close()

	rdb := redis.NewClient(RunnerRedisOptions(ropts))
	defer rdb.Close()
	// While Python starts: dial Redis and run Specialize's own steps once,
	// so that the cold start pays for neither.
	warmCtx, cancelWarm := context.WithTimeout(ctx, 2*time.Second)
	warmed := make(chan struct{})
	go func() {
		defer close(warmed)
		warmUp(warmCtx, rdb, cfg.workdir, cfg.runAs)
	}()
	defer func() {
		cancelWarm()
		<-warmed
	}()

	// A confined Python reads only directories that exist when it starts
	// (see confine in bootstrap.py): the host's shared dependencies too.
	if cfg.depsCache != "" {
		if err := os.MkdirAll(cfg.depsCache, 0o711); err != nil {
			return fmt.Errorf("dependencies: %w", err)
		}
	}
	group := cfg.appGroup(logger.Printf)
	defer group.remove()
	sink := newLogSink(stdout)
	py, err := startPython(ctx, cfg, sink)
	if err != nil {
		return err
	}
	py.group = group
	if err := group.add(py.pid()); err != nil {
		py.stop(0)
		py.finish(logger.Printf)
		return err
	}
	listening, err := awaitListening(ctx, py)
	if err != nil {
		py.stop(0)
		py.finish(logger.Printf)
		sink.flushHeld(os.Stderr)
		return err
	}
	appAddr := cfg.appAddr(listening)

	svc := &service{
		appDir:        appDir,
		bundleCache:   cfg.bundleCache,
		depsRoot:      cfg.depsRoot(),
		depsKeep:      cfg.sharedDepsKeep(),
		runAs:         cfg.runAs,
		limits:        cfg.limits,
		appAddr:       appAddr,
		readyTimeout:  cfg.readyTimeout,
		startPriority: cfg.startPriority,
		redis:         rdb,
		py:            py,
		logf:          logger.Printf,
	}
	srv := controlServer(svc, logger, digest)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln) // returns when srv is closed
	}()
	defer func() { <-served }()
	hs, _ := json.Marshal(Handshake{Control: ln.Addr().String(), App: appAddr, Pid: py.pid()})
	if err := sink.openWith(append(hs, '\n')); err != nil {
		srv.Close()
		py.stop(0)
		return fmt.Errorf("write handshake: %w", err)
	}

	return serve(ctx, srv, py, logger.Printf)
}

// serve waits until the agent is stopped (ctx) or Python exits, and winds
// down the control server and Python accordingly.
func serve(ctx context.Context, srv *http.Server, py *python, logf func(string, ...any)) error {
	select {
	case <-ctx.Done():
		srv.Close()
		py.stop(stopGrace)
		py.finish(logf)
		return nil
	case <-py.exited:
		if ctx.Err() != nil || py.terminated() {
			// The launcher signalled the whole process group and Python
			// was quicker to react than this select: a stop, not a crash.
			srv.Close()
			py.finish(logf)
			return nil
		}
		// Let a Specialize in flight report why the app died.
		sctx, cancel := context.WithTimeout(context.Background(), shutdownLimit)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
		py.finish(logf)
		return fmt.Errorf("app process exited: %s", py.exitReason())
	}
}

// prepareWorkdir creates workdir, private to this user, and the app dir in
// it, which Specialize would otherwise pay for; unmount undoes the file
// system it mounts there with disk (see mountWorkdir), or does nothing.
func prepareWorkdir(workdir string, runAs *RunAs, disk int64) (appDir string, unmount func(), err error) {
	if err := os.MkdirAll(workdir, 0o700); err != nil {
		return "", nil, fmt.Errorf("create workdir: %w", err)
	}
	// MkdirAll keeps the mode of a directory that already exists.
	if err := os.Chmod(workdir, 0o700); err != nil {
		return "", nil, fmt.Errorf("create workdir: %w", err)
	}
	// With a user of its own, the app writes only here (see confine in
	// bootstrap.py): a file system of its own bounds how much.
	release := func() {}
	if runAs != nil && disk > 0 {
		if release, err = mountWorkdir(workdir, disk); err != nil {
			return "", nil, err
		}
	}
	appDir = filepath.Join(workdir, "app")
	if err := os.MkdirAll(appDir, 0o700); err != nil {
		release()
		return "", nil, fmt.Errorf("create app dir: %w", err)
	}
	if err := runAs.give(workdir); err != nil {
		release()
		return "", nil, err
	}
	return appDir, release, nil
}

// appGroupName is the name of the app group of the agent with process id
// pid, which its launcher also finds it by (RemoveAppGroup).
func appGroupName(pid int) string { return appGroupPrefix + strconv.Itoa(pid) }

const appGroupPrefix = "gofastapi-runner-"

// appGroup makes the control group that bounds the app's processes
// together (see appGroup) when Python runs as a user of its own; nil when
// it does not, or where the machine has no cgroup v1 hierarchies to use:
// the app then has its rlimits alone.
func (c config) appGroup(logf func(string, ...any)) *appGroup {
	if c.runAs == nil {
		return nil
	}
	g, err := newAppGroup(appGroupName(os.Getpid()), c.cpu, c.limits)
	if err != nil {
		// A machine without them is the platform's to report, once
		// (CanGroupApps), not every runner's.
		if !errors.Is(err, errNoCgroups) {
			logf("the app's processes are bounded each by itself, not together: %v", err)
		}
		return nil
	}
	return g
}

// awaitListening waits for Python's "listening" event and returns it.
func awaitListening(ctx context.Context, py *python) (event, error) {
	select {
	case ev, ok := <-py.events:
		switch {
		case !ok:
			<-py.exited
			return event{}, fmt.Errorf("python bootstrap exited: %s", py.exitReason())
		case ev.Event == "error":
			return event{}, fmt.Errorf("python bootstrap failed: %s", describe(ev))
		case ev.Event != "listening" || (ev.Port <= 0 && ev.Socket == ""):
			return event{}, fmt.Errorf("python bootstrap sent %q before listening", ev.Event)
		}
		return ev, nil
	case <-ctx.Done():
		return event{}, fmt.Errorf("stopped before python was ready: %w", ctx.Err())
	}
}

// appAddr is the address the agent reports for the app's listener, as
// Python's "listening" event gave it (see appaddr).
func (c config) appAddr(listening event) string {
	if listening.Socket != "" {
		return appaddr.Unix(listening.Socket)
	}
	host := "127.0.0.1"
	if h := c.appHost; h != "" && !net.ParseIP(h).IsUnspecified() {
		host = h // the app listens on this address only
	}
	return net.JoinHostPort(host, strconv.Itoa(listening.Port))
}

// RunnerRedisOptions tunes the parsed URL's options for a client of the
// runners' read-only Redis user, which may not run CLIENT SETINFO or
// maintenance-notification commands, and which makes a GET at a time: a
// runner's agent makes one in its life, the local pool one per version it
// puts in the host's bundle cache.
func RunnerRedisOptions(o *redis.Options) *redis.Options {
	o.PoolSize = 1
	o.DisableIdentity = true
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return o
}

// controlServer serves RunnerService over HTTP/1.1, to callers that send
// the token whose SHA-256 is digest, if it is set (see controlDigest).
// There is no write timeout: Specialize legitimately lasts up to the ready
// timeout.
func controlServer(svc *service, logger *log.Logger, digest []byte) *http.Server {
	mux := http.NewServeMux()
	// Its answers are a few dozen bytes: compressing them (connect's default
	// whenever the client accepts gzip) would cost a fresh agent a gzip
	// writer's allocation, about a millisecond of its one Specialize.
	opts := []connect.HandlerOption{connect.WithCompressMinBytes(compressMinBytes)}
	if digest != nil {
		opts = append(opts, connect.WithInterceptors(requireToken(digest)))
	}
	mux.Handle(gofastapiv1connect.NewRunnerServiceHandler(svc, opts...))
	// The server starts once Python is warm: a readiness probe's target.
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Longer than the launcher's idle limit, so the launcher, not the
		// server, closes the pre-warmed connection and no call races a close.
		IdleTimeout:    2 * time.Hour,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       logger,
	}
}

// errControlToken refuses a RunnerService call without the runner's token.
var errControlToken = connect.NewError(connect.CodeUnauthenticated, errors.New("this runner takes calls only from the pool that started it"))

// controlDigest is the SHA-256 of the token the control server requires:
// of token (a local runner's, from its secrets) or sum (a pod's, from
// --control-token-sha256, in hex); nil when neither is set and calls are
// not checked.
func controlDigest(token, sum string) ([]byte, error) {
	switch {
	case token != "" && sum != "":
		return nil, errors.New("control_token in the secrets and --control-token-sha256 both set the runner's token: give one")
	case token != "":
		d := sha256.Sum256([]byte(token))
		return d[:], nil
	case sum != "":
		return hex.DecodeString(sum)
	}
	return nil, nil
}

// isSHA256Hex reports whether s is a SHA-256 in lower-case hex.
func isSHA256Hex(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// requireToken refuses calls whose Authorization is not "Bearer TOKEN"
// with a TOKEN whose SHA-256 is digest. Comparing digests takes the same
// time whatever the token, and lets a pod hold only the digest.
func requireToken(digest []byte) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			token, ok := strings.CutPrefix(req.Header().Get("Authorization"), "Bearer ")
			got := sha256.Sum256([]byte(token))
			if !ok || subtle.ConstantTimeCompare(got[:], digest) != 1 {
				return nil, errControlToken
			}
			return next(ctx, req)
		}
	}
}
