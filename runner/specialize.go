package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/redis/go-redis/v9"

	"github.com/gofastapi/gofastapi/proto/bundle"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
	"github.com/gofastapi/gofastapi/runner/bundlecache"
)

// service implements RunnerService for one agent.
type service struct {
	appDir      string // where the bundle's files go
	bundleCache string // the host's bundle cache, if any (see bundlecache)
	depsRoot    string // where apps' dependencies are unpacked (see prepareDeps)
	// depsKeep, when set (the host's shared cache), is how long a set no
	// runner uses is kept; depsLock holds the set this runner uses.
	depsKeep     time.Duration
	depsLock     *os.File
	runAs        *RunAs // owner of the files Python reads, if not the agent's user
	limits       AppLimits
	appAddr      string
	readyTimeout time.Duration
	// startPriority bounds how long Python runs at real-time priority
	// from its load command (see raiseForStart); 0: it does not.
	startPriority time.Duration
	redis         *redis.Client
	py            *python
	logf          func(format string, args ...any) // agent diagnostics, to stderr

	// specialized is set by the first Specialize call, successful or not:
	// once a bundle may have run, the runner is never offered another.
	specialized atomic.Bool
}

var _ gofastapiv1connect.RunnerServiceHandler = (*service)(nil)

// Specialize loads one app version into this runner; see RunnerService.
func (s *service) Specialize(ctx context.Context, req *connect.Request[v1.SpecializeRequest]) (*connect.Response[v1.SpecializeResponse], error) {
	// A request refused before anything is fetched leaves the runner
	// unspecialized (the launcher's warm-up sends one on purpose).
	module, err := checkRequest(req.Msg)
	if err != nil {
		return nil, toConnect(err, s.logf)
	}
	if !s.specialized.CompareAndSwap(false, true) {
		return nil, toConnect(failure(errAlreadySpecialized, "runner already specialized"), s.logf)
	}
	res, err := s.specialize(ctx, req.Msg, module)
	if err != nil {
		return nil, toConnect(err, s.logf)
	}
	return connect.NewResponse(res), nil
}

// checkRequest validates req and returns the module its entrypoint is
// imported as.
func checkRequest(req *v1.SpecializeRequest) (module string, err error) {
	if req.GetVersion() == "" {
		return "", failure(errInvalidRequest, "version is required")
	}
	return moduleName(req.GetEntrypoint())
}

func (s *service) specialize(ctx context.Context, req *v1.SpecializeRequest, module string) (*v1.SpecializeResponse, error) {
	res := &v1.SpecializeResponse{AppAddr: s.appAddr}
	linked, err := s.linkCached(req, res)
	if err != nil {
		return nil, err
	}
	if !linked {
		if err := s.fetchAndWrite(ctx, req, res); err != nil {
			return nil, err
		}
	}
	depsDir, err := s.prepareDeps(ctx, req.GetDeps(), res)
	if err != nil {
		return nil, err
	}
	written := time.Now()

	// The app serves once uvicorn's startup has completed: its socket has
	// been served since the warm-up, and the caller's request, read and held
	// by the runner until then if it came early, is the first it answers.
	loadCtx, cancel := context.WithTimeout(ctx, s.readyTimeout)
	defer cancel()
	if s.startPriority > 0 {
		raised := raiseForStart(s.py.pid(), s.startPriority)
		defer raised.endAgent()
	}
	load := loadCommand{Dir: s.appDir, Module: module, File: req.GetEntrypoint(), Env: req.GetEnv(), Limits: s.limits}
	if s.runAs == nil {
		load.Limits.Processes = 0 // it would count the agent's user's processes too
	}
	if depsDir != "" {
		load.Paths = []string{depsDir}
	}
	if err := s.py.load(load); err != nil {
		// Python is gone or going; awaitReady reports why.
		s.logf("send load command: %v", err)
	}
	importMicros, err := s.awaitReady(loadCtx)
	if err != nil {
		return nil, s.loadFailure(ctx, err)
	}
	res.LoadMicros = time.Since(written).Microseconds()
	res.ImportMicros = importMicros
	return res, nil
}

// linkCached links the app's files, and its compiled modules if the
// request names them, from the host's bundle cache into the app dir, if
// the cache holds all of them: nothing to fetch, check or write. It
// reports false when the runner has no cache or the cache has not got
// them; then, as after a failed link, the app dir is empty for
// fetchAndWrite.
func (s *service) linkCached(req *v1.SpecializeRequest, res *v1.SpecializeResponse) (bool, error) {
	if s.bundleCache == "" {
		return false, nil
	}
	start := time.Now()
	ok, modules, err := bundlecache.Link(s.bundleCache, req.GetVersion(), req.GetCompiled(), s.appDir, s.runAs.giveOne)
	if err == nil && ok {
		if _, err = os.Lstat(filepath.Join(s.appDir, filepath.FromSlash(req.GetEntrypoint()))); err != nil {
			return false, failure(errInvalidRequest, "entrypoint %s is not in bundle %s", req.GetEntrypoint(), req.GetVersion())
		}
		res.Cached = true
		res.CompiledModules = int32(modules)
		res.WriteMicros = time.Since(start).Microseconds()
		return true, nil
	}
	if err != nil {
		// An entry removed while it was linked, say: start over from an
		// empty app dir, the usual way.
		s.logf("link bundle %s from the host's cache: %v", req.GetVersion(), err)
		if err := os.RemoveAll(s.appDir); err != nil {
			return false, fmt.Errorf("empty app dir: %w", err)
		}
	}
	return false, nil
}

// fetchAndWrite fetches the app's bundle, and its compiled modules if the
// request names them, from Redis, checks them and writes them into the app
// dir.
func (s *service) fetchAndWrite(ctx context.Context, req *v1.SpecializeRequest, res *v1.SpecializeResponse) error {
	version, entry := req.GetVersion(), req.GetEntrypoint()
	start := time.Now()
	data, compiledData, err := FetchBundle(ctx, s.redis, version, req.GetCompiled() != "")
	switch {
	case errors.Is(err, redis.Nil):
		return failure(errBundleNotFound, "bundle %s not found", version)
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		s.logf("fetch bundle %s: %v", version, err)
		return failure(errBundleStore, "bundle store unavailable")
	}
	fetched := time.Now()
	res.FetchMicros = fetched.Sub(start).Microseconds()

	files, err := bundle.Decode(data, version)
	switch {
	case errors.Is(err, bundle.ErrHashMismatch):
		return failure(errBundleCorrupt, "bundle %s does not match its hash", version)
	case err != nil:
		return failure(errBundleCorrupt, "bundle %s is corrupt", version)
	}
	if !hasFile(files, entry) {
		return failure(errInvalidRequest, "entrypoint %s is not in bundle %s", entry, version)
	}
	if c := req.GetCompiled(); c != "" {
		compiled, err := CompiledFiles(compiledData, c, files)
		if err != nil {
			// Python compiles the modules itself: slower, the same app.
			s.logf("compiled modules of bundle %s left out: %v", version, err)
		}
		files = append(files, compiled...)
		res.CompiledModules = int32(len(compiled))
	}
	verified := time.Now()
	res.VerifyMicros = verified.Sub(fetched).Microseconds()

	if err := writeFiles(s.appDir, files); err != nil {
		return err
	}
	if err := s.runAs.give(s.appDir); err != nil {
		return err
	}
	res.WriteMicros = time.Since(verified).Microseconds()
	return nil
}

// FetchBundle gets bundle version from Redis and, if compiled, its compiled
// modules, in one round trip; neither is decoded or checked. compiledData
// is nil when they are not there; a missing bundle is redis.Nil. Both
// cases take the one pipelined path, which warmUp practises. The local
// pool reads what it puts in the host's bundle cache with it too.
func FetchBundle(ctx context.Context, rdb *redis.Client, version string, compiled bool) (data, compiledData []byte, err error) {
	var get, getCompiled *redis.StringCmd
	// Each command's own error is what counts (the compiled modules may be
	// missing: Redis is a cache).
	_, _ = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, bundle.Key(version))
		if compiled {
			getCompiled = p.Get(ctx, bundle.CompiledKey(version))
		}
		return nil
	})
	if data, err = get.Bytes(); err != nil {
		return nil, nil, err
	}
	if getCompiled != nil {
		compiledData, _ = getCompiled.Bytes()
	}
	return data, compiledData, nil
}

// CompiledFiles decodes a bundle's compiled modules (see
// bundle.CompiledKey), checks them against hash (the route's, from the
// Specialize request) and checks that each is the __pycache__ file of one
// of files' Python files: D/__pycache__/M.TAG.pyc for D/M.py. data is nil
// when they are not in the bundle store (see FetchBundle).
func CompiledFiles(data []byte, hash string, files []bundle.File) ([]bundle.File, error) {
	if data == nil {
		return nil, errors.New("not in the bundle store")
	}
	compiled, err := bundle.Decode(data, hash)
	if err != nil {
		return nil, err
	}
	for _, f := range compiled {
		dir, name := path.Split(f.Name)
		src, ok := strings.CutSuffix(dir, "__pycache__/")
		module, rest, _ := strings.Cut(name, ".")
		if !ok || !strings.HasSuffix(rest, ".pyc") || len(rest) <= len(".pyc") || !hasFile(files, src+module+".py") {
			return nil, fmt.Errorf("%q is not the compiled module of a file of the bundle", f.Name)
		}
	}
	return compiled, nil
}

// awaitReady waits for Python's answer to the load command and returns
// how long the app's import took, as Python measured it.
func (s *service) awaitReady(ctx context.Context) (importMicros int64, err error) {
	for {
		select {
		case ev, ok := <-s.py.events:
			if !ok {
				select {
				case <-s.py.exited:
					return 0, failure(errAppExited, "app process exited before answering: %s", s.py.exitReason())
				case <-ctx.Done():
					return 0, ctx.Err()
				}
			}
			switch ev.Event {
			case "ready":
				return ev.ImportMicros, nil
			case "error":
				return 0, failure(errAppStart, "app failed to start: %s", describe(ev))
			}
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// loadFailure turns the end of the load deadline into the error a caller can
// act on; a canceled caller context stays a context error.
func (s *service) loadFailure(parent context.Context, err error) error {
	if errors.Is(err, context.DeadlineExceeded) && parent.Err() == nil {
		return failure(errAppTimeout, "app did not answer within %s", s.readyTimeout)
	}
	return err
}

// describe renders an error event: the traceback's last line, then where in
// the app it happened if Python found a frame inside the app dir.
func describe(ev event) string {
	msg := ev.Message
	if msg == "" {
		msg = "unknown error"
	}
	if ev.File != "" && ev.Line > 0 {
		return fmt.Sprintf("%s (at %s:%d)", msg, ev.File, ev.Line)
	}
	return msg
}
