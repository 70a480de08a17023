package launch_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gofastapi/gofastapi/proto/appaddr"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/gofastapi/gofastapi/proto/bundle"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
	"github.com/gofastapi/gofastapi/runner"
	"github.com/gofastapi/gofastapi/runner/internal/pidfd"
	"github.com/gofastapi/gofastapi/runner/launch"
)

// agentEnv makes the test binary run the agent instead of the tests.
const agentEnv = "GOFASTAPI_TEST_AGENT"

func TestMain(m *testing.M) {
	if os.Getenv(agentEnv) == "1" {
		if err := runner.Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "runner:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(stopZygoteAfter{m})
}

// stopZygoteAfter stops the shared zygote after the tests ran, before
// goleak looks for goroutines left behind.
type stopZygoteAfter struct{ m *testing.M }

func (s stopZygoteAfter) Run() int {
	code := s.m.Run()
	if shared.z != nil {
		shared.z.Stop()
	}
	return code
}

// mode is how runners get their Python: exec starts one per runner,
// zygote forks it from the shared zygote. Every runner test runs in both.
type mode struct {
	name   string
	zygote bool
}

var modes = []mode{{name: "exec"}, {name: "zygote", zygote: true}}

// forEachMode runs f as a subtest for each mode.
func forEachMode(t *testing.T, f func(t *testing.T, m mode)) {
	t.Helper()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { f(t, m) })
	}
}

// shared is the zygote runner tests fork from, started at first use and
// stopped after all tests.
var shared struct {
	once sync.Once
	z    *launch.Zygote
	err  error
}

func sharedZygote(t testing.TB) *launch.Zygote {
	t.Helper()
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "gofastapi-zygote-")
		if err != nil {
			shared.err = err
			return
		}
		shared.z, shared.err = startZygote(dir)
	})
	if shared.err != nil {
		t.Fatalf("StartZygote: %v", shared.err)
	}
	return shared.z
}

func startZygote(dir string) (*launch.Zygote, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	return launch.StartZygote(ctx, launch.ZygoteConfig{Python: "/usr/bin/python3", Dir: dir})
}

// zygoteSocket returns the shared zygote's socket in zygote mode, else "".
func (m mode) zygoteSocket(t testing.TB) string {
	if !m.zygote {
		return ""
	}
	return sharedZygote(t).Socket()
}

// waitLimit only keeps a broken test from hanging; nothing is timed against it.
const waitLimit = 60 * time.Second

// startRunner starts an agent from this test binary, its Python as m says,
// and stops it when the test ends.
func startRunner(t *testing.T, m mode, redisURL string, readyTimeout time.Duration) (*launch.Runner, launch.Config) {
	t.Helper()
	return startRunnerFrom(t, m.zygoteSocket(t), redisURL, readyTimeout)
}

// startRunnerFrom starts an agent whose Python the zygote at socket forks,
// or which starts Python itself if socket is "".
func startRunnerFrom(t *testing.T, socket, redisURL string, readyTimeout time.Duration) (*launch.Runner, launch.Config) {
	t.Helper()
	return startConfigured(t, launch.Config{
		Zygote:       socket,
		WorkDir:      filepath.Join(t.TempDir(), "runner"),
		RedisURL:     redisURL,
		ReadyTimeout: readyTimeout,
	})
}

// startConfigured starts an agent as cfg says, with this test binary as its
// command and /usr/bin/python3 as its Python, and stops it when the test
// ends.
func startConfigured(t *testing.T, cfg launch.Config) (*launch.Runner, launch.Config) {
	t.Helper()
	cfg.Command = []string{os.Args[0]}
	cfg.Env = []string{agentEnv + "=1"}
	cfg.Python = "/usr/bin/python3"
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	start := time.Now()
	r, err := launch.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("launch.Start (to handshake): %v", time.Since(start))
	t.Cleanup(func() { r.Stop(10 * time.Second) })
	return r, cfg
}

func specialize(t *testing.T, r *launch.Runner, req *v1.SpecializeRequest) (*v1.SpecializeResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	start := time.Now()
	res, err := r.Specialize(ctx, req)
	if err == nil {
		t.Logf("Specialize: %v total; fetch %dus verify %dus write %dus load %dus (import %dus)",
			time.Since(start), res.GetFetchMicros(), res.GetVerifyMicros(), res.GetWriteMicros(),
			res.GetLoadMicros(), res.GetImportMicros())
	}
	return res, err
}

// get fetches path from the app and decodes its JSON body.
// appClient is an HTTP client of the app at addr (see appaddr),
// whatever host its URLs name, with a connection per request.
func appClient(addr string) *http.Client {
	return &http.Client{Timeout: waitLimit, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return appaddr.Dial(ctx, addr) },
	}}
}

func get(t *testing.T, addr, path string) (int, any) {
	t.Helper()
	resp, err := appClient(addr).Get("http://app" + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", path, err)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET %s: body %q is not JSON: %v", path, body, err)
	}
	return resp.StatusCode, v
}

func files(nameContent ...string) []bundle.File {
	var fs []bundle.File
	for i := 0; i+1 < len(nameContent); i += 2 {
		fs = append(fs, bundle.File{Name: nameContent[i], Content: []byte(nameContent[i+1])})
	}
	return fs
}

const helloApp = `from fastapi import FastAPI

app = FastAPI()


@app.get("/hello")
def hello():
    return {"message": "hello"}
`

func TestSpecializeServesApp(t *testing.T) {
	rd := startRedis(t)
	tests := []struct {
		name       string
		files      []bundle.File
		entrypoint string
		env        map[string]string
		path       string
		want       any
	}{
		{
			name:       "hello",
			files:      files("app.py", helloApp),
			entrypoint: "app.py",
			path:       "/hello",
			want:       map[string]any{"message": "hello"},
		},
		{
			name: "multi-file with package and relative import",
			files: files(
				"app.py", "from fastapi import FastAPI\nimport routes\n\napp = FastAPI()\napp.include_router(routes.router)\n",
				"routes.py", "from fastapi import APIRouter\nfrom shop.prices import total\n\nrouter = APIRouter()\n\n\n@router.get(\"/total\")\ndef get_total():\n    return {\"total\": total([1, 2, 3])}\n",
				"shop/__init__.py", "",
				"shop/prices.py", "from .tax import RATE\n\n\ndef total(xs):\n    return sum(xs) * RATE\n",
				"shop/tax.py", "RATE = 2\n",
			),
			entrypoint: "app.py",
			path:       "/total",
			want:       map[string]any{"total": 12.0},
		},
		{
			name: "entrypoint inside a package",
			files: files(
				"svc/__init__.py", "",
				"svc/main.py", "from fastapi import FastAPI\nfrom .names import NAME\n\napp = FastAPI()\n\n\n@app.get(\"/name\")\ndef name():\n    return {\"name\": NAME}\n",
				"svc/names.py", "NAME = 'svc'\n",
			),
			entrypoint: "svc/main.py",
			path:       "/name",
			want:       map[string]any{"name": "svc"},
		},
		{
			name:       "env reaches the app",
			files:      files("app.py", "import os\nfrom fastapi import FastAPI\n\napp = FastAPI()\nAT_IMPORT = os.environ.get('GREETING')\n\n\n@app.get('/env')\ndef env():\n    return {'import': AT_IMPORT, 'request': os.environ.get('API_KEY'), 'home': os.environ.get('HOME') is not None, 'redis': [k for k in os.environ if 'REDIS' in k]}\n"),
			entrypoint: "app.py",
			env:        map[string]string{"GREETING": "hi", "API_KEY": "k-123"},
			path:       "/env",
			want:       map[string]any{"import": "hi", "request": "k-123", "home": true, "redis": []any{}},
		},
		{
			name:       "user health route is served",
			files:      files("app.py", "from fastapi import FastAPI\n\napp = FastAPI()\n\n\n@app.get('/health')\ndef health():\n    return {'mine': True}\n"),
			entrypoint: "app.py",
			path:       "/health",
			want:       map[string]any{"mine": true},
		},
	}
	forEachMode(t, func(t *testing.T, m mode) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				version := rd.putBundle(t, tt.files)
				r, _ := startRunner(t, m, rd.runnerURL, 0)
				res, err := specialize(t, r, &v1.SpecializeRequest{
					AppId: "app-1", Slug: "demo", Version: version, Entrypoint: tt.entrypoint, Env: tt.env,
				})
				if err != nil {
					t.Fatalf("Specialize: %v", err)
				}
				if diff := cmp.Diff(r.AppAddr(), res.GetAppAddr()); diff != "" {
					t.Errorf("AppAddr (-want +got):\n%s", diff)
				}
				status, got := get(t, res.GetAppAddr(), tt.path)
				if status != http.StatusOK {
					t.Errorf("GET %s: status %d, want 200", tt.path, status)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("GET %s (-want +got):\n%s", tt.path, diff)
				}
			})
		}
	})
}

// TestSpecializeUsesCompiledModules checks that a runner loads the compiled
// modules a Specialize request names (the deploy's, see bundle.CompiledKey)
// instead of compiling the bundle's Python, and only those that match the
// request's hash and are the bundle's own modules; otherwise Python
// compiles the sources. The compiled module here is of other source than
// the bundle's, which tells which one ran.
func TestSpecializeUsesCompiledModules(t *testing.T) {
	rd := startRedis(t)
	const app = "from fastapi import FastAPI\n\napp = FastAPI()\n\n\n@app.get('/from')\ndef where():\n    return {'from': %q}\n"
	fs := files("app.py", fmt.Sprintf(app, "source"))
	version := rd.putBundle(t, fs)
	tag, pyc := compilePython(t, fmt.Sprintf(app, "compiled"))
	good := []bundle.File{{Name: "__pycache__/app." + tag + ".pyc", Content: pyc}}
	tests := []struct {
		name     string
		compiled func() string // stores what Redis holds, returns the request's hash
		want     string
	}{
		{"compiled", func() string { return rd.putCompiled(t, version, good) }, "compiled"},
		{"hash does not match", func() string { rd.putCompiled(t, version, good); return strings.Repeat("0", 64) }, "source"},
		{"not in redis", func() string {
			rd.admin.Del(context.Background(), bundle.CompiledKey(version))
			return bundle.Hash(good)
		}, "source"},
		{"not the bundle's module", func() string {
			return rd.putCompiled(t, version, append(good, bundle.File{Name: "__pycache__/other." + tag + ".pyc", Content: pyc}))
		}, "source"},
	}
	forEachMode(t, func(t *testing.T, m mode) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r, _ := startRunner(t, m, rd.runnerURL, 0)
				res, err := specialize(t, r, &v1.SpecializeRequest{Version: version, Entrypoint: "app.py", Compiled: tt.compiled()})
				if err != nil {
					t.Fatalf("Specialize: %v", err)
				}
				if _, got := get(t, res.GetAppAddr(), "/from"); !cmp.Equal(got, map[string]any{"from": tt.want}) {
					t.Errorf("GET /from = %v, want the %s module's answer", got, tt.want)
				}
				if want := int32(map[string]int{"compiled": 1}[tt.want]); res.GetCompiledModules() != want {
					t.Errorf("compiled modules: %d, want %d", res.GetCompiledModules(), want)
				}
			})
		}
	})
}

// compilePython compiles source as the validator does for a deploy and
// returns the interpreter's cache tag and the pyc.
func compilePython(t *testing.T, source string) (tag string, pyc []byte) {
	t.Helper()
	const compile = `import importlib.util, marshal, sys
src = sys.stdin.buffer.read()
code = compile(src, "app.py", "exec", dont_inherit=True)
sys.stdout.buffer.write(importlib.util.MAGIC_NUMBER + (1).to_bytes(4, "little") + importlib.util.source_hash(src) + marshal.dumps(code))
`
	cmd := exec.Command("/usr/bin/python3", "-I", "-c", compile)
	cmd.Stdin = strings.NewReader(source)
	pyc, err := cmd.Output()
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	out, err := exec.Command("/usr/bin/python3", "-I", "-c", "import sys; print(sys.implementation.cache_tag, end='')").Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out), pyc
}

// TestRequestBeforeLoadWaitsForStartup checks what a request sent to a warm
// runner before its app exists gets: a runner reads it at once (the gateway
// writes one as soon as the pool picks the runner) and holds it until the
// app is imported and its startup handlers have run, and then the app
// answers it. A WebSocket is held the same way.
func TestRequestBeforeLoadWaitsForStartup(t *testing.T) {
	rd := startRedis(t)
	version := rd.putBundle(t, files("app.py", `import asyncio
from fastapi import FastAPI, WebSocket

app = FastAPI()
STARTED = False


@app.on_event("startup")
async def start():
    global STARTED
    await asyncio.sleep(0.2)
    STARTED = True


@app.get("/started")
def started():
    return {"started": STARTED}


@app.websocket("/ws")
async def ws(socket: WebSocket):
    await socket.accept()
    await socket.send_text("started" if STARTED else "not started")
    await socket.close()
`))
	forEachMode(t, func(t *testing.T, m mode) {
		r, _ := startRunner(t, m, rd.runnerURL, 0)
		early, err := appaddr.Dial(context.Background(), r.AppAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer early.Close()
		if _, err := early.Write([]byte("GET /started HTTP/1.1\r\nHost: app\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		ws, err := appaddr.Dial(context.Background(), r.AppAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		if _, err := ws.Write([]byte("GET /ws HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		// Nothing answers before the app exists.
		early.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, err := early.Read(make([]byte, 1)); n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("before Specialize the runner answered (%d bytes, %v)", n, err)
		}
		if _, err := specialize(t, r, &v1.SpecializeRequest{Version: version, Entrypoint: "app.py"}); err != nil {
			t.Fatalf("Specialize: %v", err)
		}

		early.SetReadDeadline(time.Now().Add(waitLimit))
		res, err := http.ReadResponse(bufio.NewReader(early), nil)
		if err != nil {
			t.Fatalf("the request sent before the load: %v", err)
		}
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK || string(body) != `{"started":true}` {
			t.Errorf("the request sent before the load got %d %s, want 200 {\"started\":true}", res.StatusCode, body)
		}

		ws.SetReadDeadline(time.Now().Add(waitLimit))
		br := bufio.NewReader(ws)
		res, err = http.ReadResponse(br, nil)
		if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("the WebSocket opened before the load: %v, %v", res, err)
		}
		// One unmasked text frame from the server: 0x81, length, payload.
		head := make([]byte, 2)
		if _, err := io.ReadFull(br, head); err != nil {
			t.Fatal(err)
		}
		msg := make([]byte, head[1]&0x7f)
		if _, err := io.ReadFull(br, msg); err != nil {
			t.Fatal(err)
		}
		if string(msg) != "started" {
			t.Errorf("the WebSocket opened before the load got %q, want %q", msg, "started")
		}
	})
}

// TestImportTimeIsReported checks that the load phase reports the app's
// import apart: an app whose import sleeps reports at least that long, and
// the load it is part of is longer still.
func TestImportTimeIsReported(t *testing.T) {
	rd := startRedis(t)
	const nap = 50 * time.Millisecond
	app := fmt.Sprintf("import time\nfrom fastapi import FastAPI\n\ntime.sleep(%g)\napp = FastAPI()\n", nap.Seconds())
	forEachMode(t, func(t *testing.T, m mode) {
		version := rd.putBundle(t, files("app.py", app))
		r, _ := startRunner(t, m, rd.runnerURL, 0)
		res, err := specialize(t, r, &v1.SpecializeRequest{AppId: "app-1", Slug: "demo", Version: version, Entrypoint: "app.py"})
		if err != nil {
			t.Fatalf("Specialize: %v", err)
		}
		imp, load := time.Duration(res.GetImportMicros())*time.Microsecond, time.Duration(res.GetLoadMicros())*time.Microsecond
		if imp < nap || load <= imp {
			t.Errorf("import %v, load %v: want import >= %v (the app sleeps that long at import) and load > import", imp, load, nap)
		}
	})
}

func TestSpecializeErrors(t *testing.T) {
	rd := startRedis(t)
	tests := []struct {
		name        string
		files       []bundle.File
		store       func(t testing.TB, fs []bundle.File) string // stores the bundle, returns the version to ask for
		entrypoint  string
		timeout     time.Duration // the runner's ReadyTimeout; 0 for the default
		wantCode    connect.Code
		wantMessage []string // substrings of the error message
	}{
		{
			name:        "app raises at import",
			files:       files("app.py", "from fastapi import FastAPI\n\napp = FastAPI()\nx = 1 / 0\n"),
			entrypoint:  "app.py",
			wantCode:    connect.CodeFailedPrecondition,
			wantMessage: []string{"app failed to start: ZeroDivisionError: division by zero", "app.py:4"},
		},
		{
			name:        "app imports a missing module",
			files:       files("app.py", "import helpers\n", "helpers.py", "import nonexistent_module_xyz\n"),
			entrypoint:  "app.py",
			wantCode:    connect.CodeFailedPrecondition,
			wantMessage: []string{"ModuleNotFoundError: No module named 'nonexistent_module_xyz'", "helpers.py:1"},
		},
		{
			name:        "syntax error",
			files:       files("app.py", "def broken(:\n    pass\n"),
			entrypoint:  "app.py",
			wantCode:    connect.CodeFailedPrecondition,
			wantMessage: []string{"SyntaxError", "app.py:1"},
		},
		{
			name:        "no app variable",
			files:       files("main.py", "x = 1\n"),
			entrypoint:  "main.py",
			wantCode:    connect.CodeFailedPrecondition,
			wantMessage: []string{"main.py defines no variable named app"},
		},
		{
			name:        "lifespan startup fails",
			files:       files("app.py", "from fastapi import FastAPI\n\napp = FastAPI()\n\n\n@app.on_event('startup')\nasync def boom():\n    raise RuntimeError('no database')\n"),
			entrypoint:  "app.py",
			wantCode:    connect.CodeFailedPrecondition,
			wantMessage: []string{"RuntimeError: no database", "app.py:8"},
		},
		{
			name:        "app never finishes importing",
			files:       files("app.py", "import threading\n\nthreading.Event().wait()\n"),
			entrypoint:  "app.py",
			timeout:     500 * time.Millisecond,
			wantCode:    connect.CodeDeadlineExceeded,
			wantMessage: []string{"app did not answer within 500ms"},
		},
		{
			name:        "app process exits while loading",
			files:       files("app.py", "import os\n\nos._exit(3)\n"),
			entrypoint:  "app.py",
			wantCode:    connect.CodeFailedPrecondition,
			wantMessage: []string{"app process exited before answering: exit status 3"},
		},
		{
			name:        "missing bundle",
			files:       files("app.py", "# never stored\n"),
			store:       func(t testing.TB, fs []bundle.File) string { return bundle.Hash(fs) },
			entrypoint:  "app.py",
			wantCode:    connect.CodeNotFound,
			wantMessage: []string{"not found"},
		},
		{
			name:  "tampered bundle",
			files: files("app.py", helloApp),
			store: func(t testing.TB, fs []bundle.File) string {
				version := bundle.Hash(files("app.py", "print('the real one')\n"))
				rd.putBundleAs(t, version, fs)
				return version
			},
			entrypoint:  "app.py",
			wantCode:    connect.CodeDataLoss,
			wantMessage: []string{"does not match its hash"},
		},
		{
			name:        "entrypoint not in bundle",
			files:       files("app.py", helloApp),
			entrypoint:  "main.py",
			wantCode:    connect.CodeInvalidArgument,
			wantMessage: []string{"main.py is not in bundle"},
		},
	}
	forEachMode(t, func(t *testing.T, m mode) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				store := tt.store
				if store == nil {
					store = rd.putBundle
				}
				version := store(t, tt.files)
				r, _ := startRunner(t, m, rd.runnerURL, tt.timeout)
				_, err := specialize(t, r, &v1.SpecializeRequest{Version: version, Entrypoint: tt.entrypoint})
				t.Logf("Specialize error: %v", err)
				if got := connect.CodeOf(err); got != tt.wantCode {
					t.Fatalf("Specialize: code %v (%v), want %v", got, err, tt.wantCode)
				}
				var cerr *connect.Error
				if !errors.As(err, &cerr) {
					t.Fatalf("Specialize: %T is not a *connect.Error", err)
				}
				for _, want := range tt.wantMessage {
					if !strings.Contains(cerr.Message(), want) {
						t.Errorf("Specialize message %q does not contain %q", cerr.Message(), want)
					}
				}
				if strings.Contains(cerr.Message(), "Traceback") || strings.Contains(cerr.Message(), ".go") {
					t.Errorf("Specialize message %q leaks internals", cerr.Message())
				}
			})
		}
	})
}

func TestSecondSpecializeIsRefused(t *testing.T) {
	rd := startRedis(t)
	version := rd.putBundle(t, files("app.py", helloApp))
	forEachMode(t, func(t *testing.T, m mode) {
		r, _ := startRunner(t, m, rd.runnerURL, 0)
		req := &v1.SpecializeRequest{Version: version, Entrypoint: "app.py"}
		if _, err := specialize(t, r, req); err != nil {
			t.Fatalf("first Specialize: %v", err)
		}
		_, err := specialize(t, r, req)
		if connect.CodeOf(err) != connect.CodeAborted || !strings.Contains(err.Error(), "runner already specialized") {
			t.Fatalf("second Specialize: %v, want Aborted runner already specialized", err)
		}
	})
}

// TestControlTakesOnlyThePoolsCalls: the agent refuses a Specialize that
// does not carry the control token its launcher gave it (any process on the
// machine, another runner's app included, can reach its loopback listener),
// and the runner stays warm for the launcher.
func TestControlTakesOnlyThePoolsCalls(t *testing.T) {
	rd := startRedis(t)
	version := rd.putBundle(t, files("app.py", helloApp))
	r, _ := startRunner(t, modes[0], rd.runnerURL, 0)
	req := &v1.SpecializeRequest{Version: version, Entrypoint: "app.py"}
	for _, auth := range []string{"", "Bearer not-the-token"} {
		c := gofastapiv1connect.NewRunnerServiceClient(http.DefaultClient, "http://"+launch.ControlAddr(r))
		call := connect.NewRequest(req)
		if auth != "" {
			call.Header().Set("Authorization", auth)
		}
		if _, err := c.Specialize(context.Background(), call); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("Specialize with Authorization %q: %v, want Unauthenticated", auth, err)
		}
	}
	if _, err := specialize(t, r, req); err != nil {
		t.Fatalf("the launcher's Specialize after refused ones: %v", err)
	}
	if status, _ := get(t, r.AppAddr(), "/hello"); status != http.StatusOK {
		t.Errorf("GET /hello: status %d, want 200", status)
	}
}

// confinedApp tries to write or read path and says how it went, and does
// what apps do with the system's files.
const confinedApp = `import os
import pathlib
import socket
import subprocess

from fastapi import FastAPI

app = FastAPI()


@app.get("/write")
def write(path: str):
    if path == "TMPDIR":
        path = os.path.join(os.environ["TMPDIR"], "scratch")
    try:
        pathlib.Path(path).write_text("x")
        return {"wrote": True}
    except OSError as e:
        return {"error": type(e).__name__}


@app.get("/read")
def read(path: str):
    try:
        return {"read": pathlib.Path(path).read_text()}
    except OSError as e:
        return {"error": type(e).__name__}


@app.get("/listen")
def listen():
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        return {"listening": s.getsockname()[1]}
    except OSError as e:
        return {"error": type(e).__name__}
    finally:
        s.close()


@app.get("/signal")
def signal_parent():
    try:
        os.kill(os.getppid(), 0)
        return {"signalled": True}
    except OSError as e:
        return {"error": type(e).__name__}


@app.get("/parent")
def parent():
    try:
        pathlib.Path(f"/proc/{os.getppid()}/environ").read_bytes()
        return {"environ": "read"}
    except OSError as e:
        return {"error": type(e).__name__}


@app.get("/unix")
def unix(path: str):
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except OSError as e:
        return {"error": type(e).__name__}
    try:
        s.connect(path)
        return {"connected": path}
    except OSError as e:
        return {"error": "connect: " + type(e).__name__}
    finally:
        s.close()


@app.get("/caps")
def caps():
    status = pathlib.Path("/proc/self/status").read_text()
    return dict(line.split(":\t") for line in status.splitlines() if line.startswith("Cap"))


@app.get("/system")
def system():
    import wave  # a module of the standard library nothing imported yet
    import zoneinfo
    return {
        "module": wave.__name__,
        "zone": str(zoneinfo.ZoneInfo("Europe/Paris")),
        "resolved": socket.getaddrinfo("localhost", 80)[0][4][0],
        "ran": subprocess.run(["/bin/echo", "ok"], capture_output=True, text=True).stdout.strip(),
        "random": len(os.urandom(8)),
        "pair": len(socket.socketpair()),
    }
`

// TestAppIsConfinedToItsDirectory: in either mode the app writes in its own
// directory and TMPDIR, and not in the machine's /tmp; it reads its own
// files and the system's, and not a file anyone may read in /tmp; it binds
// no TCP port and signals no process outside its confinement; and what
// apps do with the system's files (import, time zones, name resolution,
// running a program) works.
func TestAppIsConfinedToItsDirectory(t *testing.T) {
	rd := startRedis(t)
	version := rd.putBundle(t, files("app.py", confinedApp))
	forEachMode(t, func(t *testing.T, m mode) {
		r, _ := startRunner(t, m, rd.runnerURL, 0)
		if _, err := specialize(t, r, &v1.SpecializeRequest{Version: version, Entrypoint: "app.py"}); err != nil {
			t.Fatal(err)
		}
		outside := filepath.Join(os.TempDir(), "gofastapi-confine-"+strings.ReplaceAll(t.Name(), "/", "-"))
		t.Cleanup(func() { os.Remove(outside) })
		for path, want := range map[string]string{"note.txt": "wrote", "TMPDIR": "wrote", outside: "PermissionError"} {
			_, body := get(t, r.AppAddr(), "/write?path="+url.QueryEscape(path))
			got, _ := json.Marshal(body)
			if !strings.Contains(string(got), want) {
				t.Errorf("the app writing %s: %s; want %s", path, got, want)
			}
		}
		readable := filepath.Join(os.TempDir(), "gofastapi-readable-"+strings.ReplaceAll(t.Name(), "/", "-"))
		if err := os.WriteFile(readable, []byte("a secret of another program"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(readable) })
		for path, want := range map[string]string{"app.py": `"read":"import os`, "/etc/hostname": `"read":`, readable: "PermissionError"} {
			_, body := get(t, r.AppAddr(), "/read?path="+url.QueryEscape(path))
			got, _ := json.Marshal(body)
			if !strings.Contains(string(got), want) {
				t.Errorf("the app reading %s: %s; want %s", path, got, want)
			}
		}
		// Nor does it listen on a TCP port of its own, signal its agent or
		// read its environment, even as root: it holds no capability.
		for path, want := range map[string]string{"/listen": "PermissionError", "/signal": "PermissionError", "/parent": "PermissionError"} {
			_, body := get(t, r.AppAddr(), path)
			if got, _ := json.Marshal(body); !strings.Contains(string(got), want) {
				t.Errorf("GET %s: %s; want %s", path, got, want)
			}
		}
		_, v := get(t, r.AppAddr(), "/caps")
		caps, _ := v.(map[string]any)
		held := []string{"CapEff", "CapPrm", "CapAmb", "CapInh"}
		if os.Geteuid() == 0 {
			held = append(held, "CapBnd") // dropped too, so no program it runs has any
		}
		for _, c := range held {
			if caps[c] != "0000000000000000" {
				t.Errorf("the app's %s is %v, want none (%v)", c, caps[c], caps)
			}
		}
		// Nor does it make a Unix socket, to reach a local service whose
		// directory lets its user in: this one listens in the test's
		// directory, open to all.
		service, err := net.Listen("unix", filepath.Join(t.TempDir(), "service.sock"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { service.Close() })
		os.Chmod(filepath.Dir(service.Addr().String()), 0o755)
		os.Chmod(service.Addr().String(), 0o777)
		_, body := get(t, r.AppAddr(), "/unix?path="+url.QueryEscape(service.Addr().String()))
		if got, _ := json.Marshal(body); !strings.Contains(string(got), `"error":"PermissionError"`) {
			t.Errorf("the app opening a Unix socket: %s; want PermissionError", got)
		}
		status, body := get(t, r.AppAddr(), "/system")
		got, _ := json.Marshal(body)
		for _, want := range []string{`"module":"wave"`, `"zone":"Europe/Paris"`, `"ran":"ok"`, `"random":8`, `"resolved":"`, `"pair":2`} {
			if status != http.StatusOK || !strings.Contains(string(got), want) {
				t.Errorf("GET /system: %d %s; want %s", status, got, want)
			}
		}
	})
}

const forwardedApp = `from fastapi import FastAPI, Request

app = FastAPI()


@app.get("/seen")
def seen(request: Request):
    return {"client": request.client and request.client.host, "url": str(request.url)}
`

// TestAppTakesTheGatewaysWord: the app's request.client and scheme are
// what the gateway's X-Forwarded-For (its last entry) and
// X-Forwarded-Proto say, whoever the runner's peer is: the gateway, the
// only one that can open its socket (or a pod's, behind NetworkPolicy).
// A client's own claim, the entries before the last, is not taken even
// when the gateway saw the client on loopback.
func TestAppTakesTheGatewaysWord(t *testing.T) {
	rd := startRedis(t)
	version := rd.putBundle(t, files("app.py", forwardedApp))
	forEachMode(t, func(t *testing.T, m mode) {
		r, _ := startRunner(t, m, rd.runnerURL, 0)
		if _, err := specialize(t, r, &v1.SpecializeRequest{Version: version, Entrypoint: "app.py"}); err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			header http.Header
			want   map[string]any
		}{
			{
				header: http.Header{"X-Forwarded-For": {"203.0.113.9, 127.0.0.1"}, "X-Forwarded-Proto": {"https"}},
				want:   map[string]any{"client": "127.0.0.1", "url": "https://demo.example.test/seen?x=1"},
			},
			{
				header: http.Header{"X-Forwarded-For": {"198.51.100.7"}, "X-Forwarded-Proto": {"http"}},
				want:   map[string]any{"client": "198.51.100.7", "url": "http://demo.example.test/seen?x=1"},
			},
			{want: map[string]any{"client": nil, "url": "http://demo.example.test/seen?x=1"}},
		} {
			req, err := http.NewRequest(http.MethodGet, "http://demo.example.test/seen?x=1", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = tt.header
			res, err := appClient(r.AppAddr()).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			err = json.NewDecoder(res.Body).Decode(&got)
			res.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("with %v (-want +got):\n%s", tt.header, diff)
			}
		}
	})
}

// TestRefusedRequestLeavesRunnerWarm checks that a request refused before
// anything is fetched (the launcher's warm-up sends one) does not use up
// the runner.
func TestRefusedRequestLeavesRunnerWarm(t *testing.T) {
	rd := startRedis(t)
	version := rd.putBundle(t, files("app.py", helloApp))
	forEachMode(t, func(t *testing.T, m mode) {
		r, _ := startRunner(t, m, rd.runnerURL, 0)
		for _, bad := range []*v1.SpecializeRequest{{Entrypoint: "app.py"}, {Version: version, Entrypoint: "app.txt"}} {
			if _, err := specialize(t, r, bad); connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Errorf("Specialize(%v): %v, want InvalidArgument", bad, err)
			}
		}
		if _, err := specialize(t, r, &v1.SpecializeRequest{Version: version, Entrypoint: "app.py"}); err != nil {
			t.Fatalf("Specialize after refused requests: %v", err)
		}
		if status, _ := get(t, r.AppAddr(), "/hello"); status != http.StatusOK {
			t.Errorf("GET /hello: status %d, want 200", status)
		}
	})
}

type logLine struct{ stream, text string }

func TestAppOutputReachesLog(t *testing.T) {
	rd := startRedis(t)
	version := rd.putBundle(t, files("app.py", `import sys
from fastapi import FastAPI

print("loading app")
app = FastAPI()


@app.get("/hello")
def hello():
    print("handling hello")
    print("warned", file=sys.stderr)
    return {"message": "hello"}
`))
	forEachMode(t, func(t *testing.T, m mode) {
		r, lines := specializeLogged(t, m, rd, version)
		get(t, r.AppAddr(), "/hello")

		// stdout and stderr are separate pipes: order holds within a stream only.
		waitForLines(t, lines, []logLine{{"stdout", "loading app"}, {"stdout", "handling hello"}, {"stderr", "warned"}})
	})
}

// TestBrokenRouteFailsAlone checks what a route FastAPI cannot set up
// does to its app now that routes are set up on first use (lazy_routes in
// bootstrap.py): the app starts and its other routes answer, the broken
// one answers 500, and the app's logs say which route it is, where it was
// declared and what FastAPI raised, within a moment of the start.
func TestBrokenRouteFailsAlone(t *testing.T) {
	rd := startRedis(t)
	version := rd.putBundle(t, files("app.py", `from fastapi import FastAPI

app = FastAPI()


class NotAModel:
    pass


@app.get("/ok")
def ok():
    return {"ok": True}


@app.get("/bad")
def bad(x: NotAModel):
    return {}
`))
	forEachMode(t, func(t *testing.T, m mode) {
		r, lines := specializeLogged(t, m, rd, version)
		if status, body := get(t, r.AppAddr(), "/ok"); status != http.StatusOK {
			t.Errorf("GET /ok: %d %v, want 200", status, body)
		}
		res, err := appClient(r.AppAddr()).Get("http://app/bad")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusInternalServerError {
			t.Errorf("GET /bad: %d, want 500", res.StatusCode)
		}
		want := "gofastapi: route GET /bad (bad in app.py, line 15) could not be set up, so requests to it answer 500. FastAPI raised:"
		limit := time.After(waitLimit)
		for found := false; !found; {
			select {
			case l := <-lines:
				found = l == logLine{"stderr", want}
			case <-limit:
				t.Fatalf("log line %q never arrived", want)
			}
		}
	})
}

// specializeLogged starts a runner, sends its app's log lines to the
// returned channel (as the pool does at claim time) and specializes it
// with version's app.py.
func specializeLogged(t *testing.T, m mode, rd *testRedis, version string) (*launch.Runner, chan logLine) {
	t.Helper()
	lines := make(chan logLine, 100)
	r, _ := startRunner(t, m, rd.runnerURL, 0)
	r.SetLog(func(ts time.Time, stream, text string) {
		if ts.IsZero() {
			t.Errorf("log line %q has no time", text)
		}
		lines <- logLine{stream, text}
	})
	if _, err := specialize(t, r, &v1.SpecializeRequest{Version: version, Entrypoint: "app.py"}); err != nil {
		t.Fatalf("Specialize: %v", err)
	}
	return r, lines
}

// TestAppSeesOnlyItsRequests checks that loading an app sends it no
// request of the platform's own (no readiness probe): its middleware,
// which prints every path, sees only the request made to it.
func TestAppSeesOnlyItsRequests(t *testing.T) {
	rd := startRedis(t)
	version := rd.putBundle(t, files("app.py", `from fastapi import FastAPI, Request

app = FastAPI()


@app.middleware("http")
async def show(request: Request, call_next):
    print("path", request.url.path, flush=True)
    return await call_next(request)


@app.get("/hello")
def hello():
    return {"message": "hello"}
`))
	forEachMode(t, func(t *testing.T, m mode) {
		r, lines := specializeLogged(t, m, rd, version)
		get(t, r.AppAddr(), "/hello")
		r.Stop(10 * time.Second) // the log is read to its end
		close(lines)
		var paths []string
		for l := range lines {
			if p, ok := strings.CutPrefix(l.text, "path "); ok {
				paths = append(paths, p)
			}
		}
		if !slices.Equal(paths, []string{"/hello"}) {
			t.Errorf("the app's middleware saw %q, want only /hello", paths)
		}
	})
}

// TestStopIsGraceful checks what Stop promises a specialized app: a
// request in flight when it is called completes, and the app's shutdown
// handlers run (uvicorn's handling of SIGTERM).
func TestStopIsGraceful(t *testing.T) {
	rd := startRedis(t)
	version := rd.putBundle(t, files("app.py", `import time
from fastapi import FastAPI

app = FastAPI()


@app.get("/slow")
def slow():
    print("slow started", flush=True)
    time.sleep(1)
    return {"message": "finished"}


@app.on_event("shutdown")
def bye():
    print("shutdown ran", flush=True)
`))
	forEachMode(t, func(t *testing.T, m mode) {
		r, lines := specializeLogged(t, m, rd, version)
		answered := make(chan string, 1)
		go func() {
			resp, err := appClient(r.AppAddr()).Get("http://app/slow")
			if err != nil {
				answered <- err.Error()
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			answered <- fmt.Sprintf("%d %s", resp.StatusCode, body)
		}()
		waitForLines(t, lines, []logLine{{"stdout", "slow started"}})
		stopped := make(chan struct{})
		go func() {
			r.Stop(10 * time.Second)
			close(stopped)
		}()
		if got, want := <-answered, `200 {"message":"finished"}`; got != want {
			t.Errorf("request in flight during Stop: %s, want %s", got, want)
		}
		<-stopped
		// The log is read to its end before Stop returns.
		waitForLines(t, lines, []logLine{{"stdout", "shutdown ran"}})
	})
}

// waitForLines reads lines until every line of want has arrived.
func waitForLines(t *testing.T, lines <-chan logLine, want []logLine) {
	t.Helper()
	limit := time.NewTimer(waitLimit)
	defer limit.Stop()
	missing := map[logLine]bool{}
	for _, w := range want {
		missing[w] = true
	}
	var seen []logLine
	for len(missing) > 0 {
		select {
		case l := <-lines:
			delete(missing, l)
			seen = append(seen, l)
		case <-limit.C:
			t.Fatalf("log lines %+v never arrived; saw %+v", missing, seen)
		}
	}
}

func TestStopEndsProcessGroupAndRemovesWorkDir(t *testing.T) {
	rd := startRedis(t)
	// The app leaves a subprocess behind that ignores SIGTERM.
	version := rd.putBundle(t, files("app.py", helloApp+`
import subprocess

CHILD = subprocess.Popen(["/bin/sh", "-c", "trap '' TERM; exec sleep 100000"])


@app.get("/child")
def child():
    return {"pid": CHILD.pid}
`))
	forEachMode(t, func(t *testing.T, m mode) {
		r, cfg := startRunner(t, m, rd.runnerURL, 0)
		if _, err := specialize(t, r, &v1.SpecializeRequest{Version: version, Entrypoint: "app.py"}); err != nil {
			t.Fatalf("Specialize: %v", err)
		}
		if _, err := os.Stat(filepath.Join(cfg.WorkDir, "app", "app.py")); err != nil {
			t.Fatalf("app file not written: %v", err)
		}
		_, body := get(t, r.AppAddr(), "/child")
		// Python and its subprocess are not this process's children (they
		// are the agent's or the zygote's): pidfds say when they exited.
		app, err := pidfd.Open(r.AppPid())
		if err != nil {
			t.Fatalf("pidfd for Python: %v", err)
		}
		defer app.Close()
		child, err := pidfd.Open(int(body.(map[string]any)["pid"].(float64)))
		if err != nil {
			t.Fatalf("pidfd for the app's subprocess: %v", err)
		}
		defer child.Close()

		r.Stop(10 * time.Second)
		select {
		case <-r.Done():
		default:
			t.Fatal("Done not closed after Stop")
		}
		if err := r.ExitErr(); err != nil {
			t.Errorf("ExitErr after graceful Stop = %v, want nil", err)
		}
		// Stop returns once Python has exited.
		if !app.Exited() {
			t.Errorf("Python %d has not exited after Stop (pidfd not readable)", r.AppPid())
		}
		for _, pid := range []int{r.Pid(), r.AppPid()} {
			if alive(pid) {
				t.Errorf("process %d still alive after Stop", pid)
			}
		}
		// The subprocess ignores SIGTERM; Stop sends its group SIGKILL, which
		// the kernel delivers after Stop returned.
		exited := make(chan struct{})
		go func() {
			child.Wait()
			close(exited)
		}()
		select {
		case <-exited:
		case <-time.After(waitLimit):
			t.Errorf("the app's subprocess %d still alive after Stop", child.Pid())
			child.Close()
			<-exited
		}
		if _, err := os.Stat(cfg.WorkDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("WorkDir after Stop: %v, want not exist", err)
		}
		r.Stop(time.Second) // idempotent
	})
}

func TestKilledPythonEndsRunner(t *testing.T) {
	rd := startRedis(t)
	version := rd.putBundle(t, files("app.py", helloApp))
	forEachMode(t, func(t *testing.T, m mode) {
		r, _ := startRunner(t, m, rd.runnerURL, 0)
		if _, err := specialize(t, r, &v1.SpecializeRequest{Version: version, Entrypoint: "app.py"}); err != nil {
			t.Fatalf("Specialize: %v", err)
		}
		if err := syscall.Kill(r.AppPid(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		select {
		case <-r.Done():
		case <-time.After(waitLimit):
			t.Fatal("Done not closed after Python was killed")
		}
		if err := r.ExitErr(); err == nil || !strings.Contains(err.Error(), "app process exited: killed by SIGKILL") {
			t.Errorf("ExitErr = %v, want it to say Python was killed", err)
		}
	})
}

func TestStartFails(t *testing.T) {
	tests := []struct {
		name    string
		python  string
		zygote  string
		wantErr string
	}{
		{name: "exec: missing interpreter", python: "/nonexistent/python3", wantErr: "/nonexistent/python3"},
		{name: "zygote: nothing listening", python: "/usr/bin/python3", zygote: "/nonexistent/zygote.sock", wantErr: "/nonexistent/zygote.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			workDir := filepath.Join(t.TempDir(), "runner")
			_, err := launch.Start(ctx, launch.Config{
				Command:  []string{os.Args[0]},
				Env:      []string{agentEnv + "=1"},
				Python:   tt.python,
				Zygote:   tt.zygote,
				WorkDir:  workDir,
				RedisURL: "redis://127.0.0.1:1/0",
			})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Start: %v, want an error naming %s", err, tt.wantErr)
			}
			if _, err := os.Stat(workDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("WorkDir after failed Start: %v, want not exist", err)
			}
		})
	}
}

// alive reports whether pid is a live process (zombies count as dead).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Field 3, after the parenthesized command name, is the state.
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || !strings.HasPrefix(string(stat[i+1:]), " Z")
}
