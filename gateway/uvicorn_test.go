package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

const python = "/usr/bin/python3"

// appPy is the FastAPI app the tests deploy. APP_VERSION stands in for the
// version's code: the pool puts the SpecializeRequest's version there.
const appPy = `import asyncio, os
from fastapi import FastAPI, Request

app = FastAPI()
VERSION = os.environ.get("APP_VERSION", "")
arrived = asyncio.Event()
unblock = asyncio.Event()


@app.get("/healthz")
async def healthz():
    return {"ok": True}


@app.get("/echo")
async def echo(request: Request):
    return {
        "method": request.method,
        "path": request.url.path,
        "query": request.url.query,
        "headers": dict(request.headers.items()),
        "version": VERSION,
        "greeting": os.environ.get("GREETING", ""),
    }


@app.post("/items")
async def items(item: dict):
    return {"received": item, "version": VERSION}


@app.get("/block")
async def block():
    arrived.set()
    await unblock.wait()
    return {"version": VERSION}


@app.get("/arrived")
async def wait_arrived():
    await arrived.wait()
    return {}


@app.post("/unblock")
async def do_unblock():
    unblock.set()
    return {}
`

// brokenPy fails while being imported, as a user's app might.
const brokenPy = `from fastapi import FastAPI

app = FastAPI()
ratio = 1 / 0
`

// launcher serves main:app from the directory in argv[1] on the listening
// socket the test passes as fd 3, so the port is bound before Python starts
// and no other process can take it. With a path in argv[2], the runners'
// bootstrap, it serves connections as runners do, the gateway's lane
// included (RunnerProtocol there); without, with uvicorn's own HTTP only,
// as a runner of a release before the lane.
const launcher = `import importlib.util, socket, sys, uvicorn
sys.path.insert(0, sys.argv[1])
sock = socket.socket(fileno=3)
config = uvicorn.Config("main:app", log_level="warning", lifespan="off", access_log=False)
if len(sys.argv) > 2:
    spec = importlib.util.spec_from_file_location("bootstrap", sys.argv[2])
    bootstrap = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bootstrap)
    config.http = bootstrap.RunnerProtocol
    config.http_inner = bootstrap.http_protocol()
uvicorn.Server(config).run(sockets=[sock])
`

// bootstrapPy is the runners' bootstrap, for launcher.
const bootstrapPy = "../runner/bootstrap.py"

// writeApp writes source as main.py in a new temporary directory.
func writeApp(t testing.TB, source string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.py"), []byte(source), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// uvicornRunner is one uvicorn process serving an app: a real Runner.
type uvicornRunner struct {
	addr    string
	version string
	cmd     *exec.Cmd
	stderr  *bytes.Buffer // read only after done is closed
	done    chan struct{}

	touches     atomic.Int64
	released    chan struct{}
	releaseOnce sync.Once
	answers     firstBytes
}

var _ Runner = (*uvicornRunner)(nil)

func (u *uvicornRunner) Addr() string                     { return u.addr }
func (u *uvicornRunner) Touch()                           { u.touches.Add(1) }
func (u *uvicornRunner) Done() <-chan struct{}            { return u.done }
func (u *uvicornRunner) Answered(firstByte time.Duration) { u.answers.add(firstByte) }

// Release stops uvicorn with SIGTERM, on which it finishes requests in
// flight and exits.
func (u *uvicornRunner) Release() {
	u.releaseOnce.Do(func() {
		close(u.released)
		_ = u.cmd.Process.Signal(syscall.SIGTERM)
	})
}

// kill ends the process abruptly, as a crash would, and waits for it.
func (u *uvicornRunner) kill() {
	_ = u.cmd.Process.Kill()
	<-u.done
}

func (u *uvicornRunner) wasReleased() bool {
	select {
	case <-u.released:
		return true
	default:
		return false
	}
}

// startUvicorn starts uvicorn serving the app in dir with env added to its
// environment, and returns once the app has answered GET /healthz. The
// socket is listening before Python starts, so the readiness request waits
// in the accept queue until the app serves it, or fails when Python exits
// and the socket closes; no polling is needed. ctx bounds the wait. picked,
// if not nil, is called with the app's address once Python has started.
func startUvicorn(ctx context.Context, dir string, env map[string]string, picked func(string)) (*uvicornRunner, error) {
	return startPython(ctx, dir, env, picked, exec.Command(python, "-c", launcher, dir, bootstrapPy))
}

// startPlainUvicorn is startUvicorn without the gateway's lane: uvicorn's
// own HTTP protocol serves every connection.
func startPlainUvicorn(ctx context.Context, dir string, env map[string]string, picked func(string)) (*uvicornRunner, error) {
	return startPython(ctx, dir, env, picked, exec.Command(python, "-c", launcher, dir))
}

func startPython(ctx context.Context, dir string, env map[string]string, picked func(string), cmd *exec.Cmd) (*uvicornRunner, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f, err := ln.(*net.TCPListener).File()
	addr := ln.Addr().String()
	ln.Close() // f keeps the socket open and listening
	if err != nil {
		return nil, err
	}

	u := &uvicornRunner{
		addr:     addr,
		version:  env["APP_VERSION"],
		cmd:      cmd,
		stderr:   &bytes.Buffer{},
		done:     make(chan struct{}),
		released: make(chan struct{}),
	}
	u.cmd.ExtraFiles = []*os.File{f}
	u.cmd.Env = os.Environ()
	for k, v := range env {
		u.cmd.Env = append(u.cmd.Env, k+"="+v)
	}
	u.cmd.Stderr = u.stderr
	err = u.cmd.Start()
	f.Close() // now only Python holds the socket: its exit closes it
	if err != nil {
		return nil, err
	}
	go func() {
		_ = u.cmd.Wait()
		close(u.done)
	}()
	if picked != nil {
		picked(addr)
	}

	// Stop waiting as soon as Python exits.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-u.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := callOK(ctx, http.MethodGet, "http://"+addr+"/healthz"); err != nil {
		u.kill()
		if line := lastLine(u.stderr.String()); line != "" {
			return nil, errors.New(line)
		}
		return nil, fmt.Errorf("app did not become ready: %w", err)
	}
	return u, nil
}

// callOK sends a bodiless request to url on a fresh connection and checks
// for 200.
func callOK(ctx context.Context, method, url string) error {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// lastLine returns the last non-empty line of s: for a Python crash, the
// exception.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// pythonPool is a hand-written Pool (the real one lives in pool/): each
// Claim starts a uvicorn process for the app of the requested version.
type pythonPool struct {
	apps  map[string]string // version -> app directory; "" for any other
	plain bool              // runners without the gateway's lane (startPlainUvicorn)

	mu      sync.Mutex
	claims  int
	runners []*uvicornRunner
	reqs    []*v1.SpecializeRequest
}

var _ Pool = (*pythonPool)(nil)

// newPythonPool returns a pool serving appPy for every version (plus the
// given version -> source overrides), stopping its processes at cleanup.
func newPythonPool(t testing.TB, overrides map[string]string) *pythonPool {
	p := &pythonPool{apps: map[string]string{"": writeApp(t, appPy)}}
	for version, src := range overrides {
		p.apps[version] = writeApp(t, src)
	}
	t.Cleanup(p.close)
	return p
}

// Claim calls picked as soon as the app's socket listens, before Python
// starts, as the platform's pool does with a warm runner.
func (p *pythonPool) Claim(ctx context.Context, req *v1.SpecializeRequest, picked func(string)) (Runner, error) {
	p.mu.Lock()
	p.claims++
	p.reqs = append(p.reqs, req)
	p.mu.Unlock()
	dir, ok := p.apps[req.GetVersion()]
	if !ok {
		dir = p.apps[""]
	}
	env := map[string]string{"APP_VERSION": req.GetVersion()}
	for k, v := range req.GetEnv() {
		env[k] = v
	}
	start := startUvicorn
	if p.plain {
		start = startPlainUvicorn
	}
	u, err := start(ctx, dir, env, picked)
	if err != nil {
		if ctx.Err() != nil {
			return nil, connect.NewError(connect.CodeDeadlineExceeded, err)
		}
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("app failed to start: %w", err))
	}
	p.mu.Lock()
	p.runners = append(p.runners, u)
	p.mu.Unlock()
	return u, nil
}

func (p *pythonPool) claimCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.claims
}

func (p *pythonPool) runner(i int) *uvicornRunner {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runners[i]
}

func (p *pythonPool) close() {
	p.mu.Lock()
	runners := p.runners
	p.mu.Unlock()
	for _, u := range runners {
		u.kill()
	}
}
