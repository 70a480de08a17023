package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gofastapi/gofastapi/controlplane/embedded"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

// The end-to-end test drives the real binary: `gofastapi dev` with embedded
// FerretDB, a redis-server child and real Python runners, through the CLI and
// plain HTTP requests carrying app Host headers.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gofastapi-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "gofastapi")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err == nil {
		// The agent alone, beside it, as make build does: the platform
		// starts runners with it (runnerCommand).
		out, err = exec.Command("go", "build", "-o", filepath.Join(dir, "gofastapi-runner"), "../gofastapi-runner").CombinedOutput()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// platform is one running `gofastapi dev`.
type platform struct {
	t      *testing.T
	cmd    *exec.Cmd
	port   string
	logs   *logBuffer
	home   string
	exited chan struct{}
	// internal receives the address of the operators' listener once the
	// platform prints it.
	internal chan string
}

func startPlatform(t *testing.T, data, home string, extra ...string) *platform {
	t.Helper()
	args := append([]string{"dev", "--addr", "127.0.0.1:0", "--data", data, "--warm", "1", "--metrics-addr", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &platform{t: t, cmd: cmd, logs: &logBuffer{}, home: home, exited: make(chan struct{}), internal: make(chan string, 1)}
	cmd.Stderr = p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.exited) }()
	t.Cleanup(p.stop)
	ready := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`http://localhost:(\d+)`)
		internal := regexp.MustCompile(`/readyz at http://(\S+)`)
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			if m := internal.FindStringSubmatch(s.Text()); m != nil {
				p.internal <- m[1]
			} else if m := re.FindStringSubmatch(s.Text()); m != nil {
				ready <- m[1]
			}
		}
	}()
	select {
	case p.port = <-ready:
	case <-p.exited:
		t.Fatalf("gofastapi dev exited:\n%s", p.logs)
	case <-time.After(2 * time.Minute):
		t.Fatalf("gofastapi dev did not start:\n%s", p.logs)
	}
	return p
}

func (p *platform) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
		p.t.Errorf("gofastapi dev did not stop on SIGTERM:\n%s", p.logs)
	}
}

// cli runs the client with this platform's server and the test's HOME.
func (p *platform) cli(args ...string) (string, error) {
	return p.cliIn("", args...)
}

// cliIn runs the client in directory dir.
func (p *platform) cliIn(dir string, args ...string) (string, error) {
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+p.home, "XDG_CONFIG_HOME="+filepath.Join(p.home, ".config"),
		"GOFASTAPI_SERVER=http://127.0.0.1:"+p.port, "GOFASTAPI_TOKEN=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (p *platform) mustCLI(args ...string) string {
	p.t.Helper()
	out, err := p.cli(args...)
	if err != nil {
		p.t.Fatalf("gofastapi %s: %v\n%s\nserver log:\n%s", strings.Join(args, " "), err, out, p.logs)
	}
	return out
}

// get requests path from app slug through the gateway.
func (p *platform) get(slug, path string) (int, string) {
	p.t.Helper()
	code, _, body := p.request(slug+".localhost", path, nil)
	return code, body
}

// request sends a GET of path with header through the gateway to host (an
// app's NAME.localhost, or any other host) and returns the answer.
func (p *platform) request(host, path string, header http.Header) (int, http.Header, string) {
	p.t.Helper()
	req, _ := http.NewRequest("GET", "http://127.0.0.1:"+p.port+path, nil)
	req.Host = host + ":" + p.port
	maps.Copy(req.Header, header)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

// waitLog polls the app's logs until a line contains want.
func (p *platform) waitLog(app, want string) {
	p.t.Helper()
	p.waitLogCount(app, want, 1)
}

// waitLogCount polls the app's logs until want occurs n times.
func (p *platform) waitLogCount(app, want string, n int) {
	p.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out, _ := p.cli("logs", app)
		if strings.Count(out, want) >= n {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("logs of %s never showed %q %d times:\n%s", app, want, n, out)
		}
		time.Sleep(200 * time.Millisecond) // polling an eventually written log line, not waiting for readiness
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const helloApp = `from fastapi import FastAPI

app = FastAPI()

@app.get("/")
def root():
    print("hello was called", flush=True)
    return {"message": "%s"}
`

func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	data, home, src := t.TempDir(), t.TempDir(), t.TempDir()
	p := startPlatform(t, data, home, "--idle-timeout", "1s")

	out := p.mustCLI("signup", "--username", "alice", "--password", "correct horse")
	if !strings.Contains(out, "as alice (admin)") {
		t.Errorf("signup output %q: want the first user to be admin", out)
	}

	hello := writeFile(t, src, "hello.py", fmt.Sprintf(helloApp, "v1"))
	out = p.mustCLI("deploy", hello)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	wantURL := "http://hello.localhost:" + p.port
	if got := lines[len(lines)-1]; got != wantURL {
		t.Fatalf("deploy: last line %q, want the URL %q\n%s", got, wantURL, out)
	}
	for _, stage := range []string{"validate", "store", "publish", "route", "live"} {
		if !strings.Contains(out, stage) {
			t.Errorf("deploy output lacks stage %q:\n%s", stage, out)
		}
	}

	code, body := p.get("hello", "/")
	if code != 200 || !strings.Contains(body, `"message":"v1"`) {
		t.Fatalf("GET hello/ = %d %s\nserver log:\n%s", code, body, p.logs)
	}
	if code, body := p.get("hello", "/docs"); code != 200 || !strings.Contains(body, "swagger") {
		t.Errorf("GET hello/docs = %d %.100s", code, body)
	}

	// open prints the URL for scripts, and otherwise runs $BROWSER on it.
	if out := strings.TrimSpace(p.mustCLI("open", "--print", "hello")); out != wantURL {
		t.Errorf("open --print hello = %q, want %q", out, wantURL)
	}
	opened := filepath.Join(src, "opened")
	browser := writeFile(t, src, "browser.sh", "#!/bin/sh\necho \"$1\" > "+opened+"\n")
	if err := os.Chmod(browser, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BROWSER", browser)
	p.mustCLI("open", "--docs", "hello")
	if b, err := os.ReadFile(opened); err != nil || strings.TrimSpace(string(b)) != wantURL+"/docs" {
		t.Errorf("open --docs hello ran the browser on %q (%v), want %q", b, err, wantURL+"/docs")
	}
	p.mustCLI("new", "draftonly", "--no-deploy")
	if out, err := p.cli("open", "draftonly"); err == nil || !strings.Contains(out, "app draftonly is not deployed yet: deploy it first") {
		t.Errorf("open of an app never deployed: err %v, %q", err, out)
	}

	writeFile(t, src, "hello.py", fmt.Sprintf(helloApp, "v2"))
	p.mustCLI("deploy", hello)
	if code, body := p.get("hello", "/"); code != 200 || !strings.Contains(body, `"message":"v2"`) {
		t.Errorf("after redeploy GET hello/ = %d %s, want v2", code, body)
	}
	if out := p.mustCLI("deploy", hello); !strings.Contains(out, "no changes") {
		t.Errorf("deploying identical files: %q, want it to say no changes", out)
	}
	// An app that is not there is named back (to an admin, as here, by the
	// observability service, as not there at all).
	for _, cmd := range [][]string{{"delete", "nope"}, {"stats", "nope"}} {
		if out, err := p.cli(cmd...); err == nil || !strings.Contains(out, `no app named "nope"`) {
			t.Errorf("gofastapi %s: %v %q; want it to say there is no app named nope", strings.Join(cmd, " "), err, out)
		}
	}
	// Flags may follow the files.
	if out := p.mustCLI("deploy", hello, "--name", "hello-too", "--no-warm"); !strings.Contains(out, "not warmed, as asked") {
		t.Errorf("deploy FILE --name N --no-warm: %q", out)
	}
	if code, body := p.get("hello-too", "/"); code != 200 || !strings.Contains(body, `"message":"v2"`) {
		t.Errorf("GET hello-too/ = %d %s, want v2", code, body)
	}

	broken := writeFile(t, src, "broken.py", "from fastapi import FastAPI\napp = FastAPI()\nif True\n    pass\n")
	out, err := p.cli("deploy", broken)
	if err == nil || !strings.Contains(out, "broken.py:3:") || strings.Count(out, "SyntaxError") != 1 {
		t.Errorf("deploy with a syntax error: err %v, output %q; want broken.py:3 and SyntaxError, once", err, out)
	}

	sneaky := writeFile(t, src, "sneaky.py", "import subprocess\nfrom fastapi import FastAPI\napp = FastAPI()\n")
	out, err = p.cli("deploy", sneaky)
	if err == nil || !strings.Contains(out, "sneaky.py:1:1") || !strings.Contains(out, "import of 'subprocess' is not allowed") {
		t.Errorf("deploy importing subprocess: err %v, output %q", err, out)
	}
	// Several problems: the first, how many more, then each on its line.
	sneakier := writeFile(t, src, "sneakier.py", "import subprocess\nimport socket\nfrom fastapi import FastAPI\napp = FastAPI()\n")
	out, err = p.cli("deploy", sneakier)
	if err == nil || !strings.Contains(out, "declared in requirements.txt (and 1 more)") || !strings.Contains(out, "\n  sneakier.py:1:1: import of 'subprocess'") ||
		!strings.Contains(out, "\n  sneakier.py:2:1: import of 'socket'") {
		t.Errorf("deploy importing subprocess and socket: err %v, output %q; want both problems listed", err, out)
	}

	// A multi-file app: modules and a package with a relative import, named
	// by their paths relative to where the CLI runs.
	multi := filepath.Join(src, "multi")
	os.MkdirAll(filepath.Join(multi, "pkg"), 0o755)
	writeFile(t, multi, "app.py", "from fastapi import FastAPI\nfrom routes import router\napp = FastAPI()\napp.include_router(router)\n")
	writeFile(t, multi, "routes.py", "from fastapi import APIRouter\nfrom pkg import double\nrouter = APIRouter()\n@router.get('/double/{n}')\ndef d(n: int):\n    return {'result': double(n)}\n")
	writeFile(t, multi, "pkg/__init__.py", "from .util import double\n")
	writeFile(t, multi, "pkg/util.py", "def double(n):\n    return 2 * n\n")
	if out, err := p.cliIn(multi, "deploy", "--name", "multi", "app.py", "routes.py", "pkg/__init__.py", "pkg/util.py"); err != nil {
		t.Fatalf("multi-file deploy: %v\n%s", err, out)
	}
	if code, body := p.get("multi", "/double/21"); code != 200 || !strings.Contains(body, `"result":42`) {
		t.Errorf("GET multi/double/21 = %d %s", code, body)
	}

	// An app that raises at import fails its deploy at the warm stage,
	// with the error and its line; it stays deployed (there is no version
	// to go back to) and answers with the error.
	crash := writeFile(t, src, "crash.py", "from fastapi import FastAPI\napp = FastAPI()\nx = 1 / 0\n")
	if out, err := p.cli("deploy", crash); err == nil || !strings.Contains(out, "deploy failed at the warm stage") || !strings.Contains(out, "ZeroDivisionError: division by zero (at crash.py:3)") {
		t.Errorf("deploy of crash.py: %v\n%s", err, out)
	}
	if code, body := p.get("crash", "/"); code != 502 || !strings.Contains(body, "ZeroDivisionError") {
		t.Errorf("GET crash/ = %d %s; want 502 naming ZeroDivisionError", code, body)
	}

	if code, _ := p.get("nosuchapp", "/"); code != 404 {
		t.Errorf("GET nosuchapp/ = %d, want 404", code)
	}

	// The app's own output reaches its logs; with a 1 s idle timeout the
	// runner is reaped and the next request cold-starts a new one.
	p.waitLog("hello", "hello was called")
	p.waitLog("hello", "scaled to zero")
	if code, body := p.get("hello", "/"); code != 200 || !strings.Contains(body, "v2") {
		t.Errorf("GET after scale to zero = %d %s", code, body)
	}
	// The pool records a cold start just after it (the record, then the
	// log line): once the logs show the second, both records are there.
	p.waitLogCount("hello", "cold start", 2)
	out = p.mustCLI("coldstarts", "hello")
	if n := strings.Count(out, "ms"); n < 2*8 || !strings.Contains(out, "IMPORT") || !strings.Contains(out, "FIRST BYTE") {
		t.Errorf("want at least 2 cold starts with their phases:\n%s", out)
	}

	// Another user sees none of alice's apps.
	bob := &platform{t: t, port: p.port, home: t.TempDir(), logs: p.logs}
	bob.mustCLI("signup", "--username", "bob", "--password", "another secret")
	// Alice's app reads to bob as one that does not exist.
	for _, name := range []string{"hello", "nope"} {
		if out, err := bob.cli("delete", name); err == nil || !strings.Contains(out, fmt.Sprintf("you have no app named %q: check the name", name)) {
			t.Errorf("bob deleting %s: err %v, %q; want that he has no app named so", name, err, out)
		}
	}
	if out := bob.mustCLI("apps"); strings.Contains(out, "hello") {
		t.Errorf("bob's app list shows alice's app:\n%s", out)
	}

	keep := writeFile(t, src, "keep.py", fmt.Sprintf(helloApp, "kept"))
	p.mustCLI("deploy", keep)
	p.mustCLI("delete", "hello")
	if code, _ := p.get("hello", "/"); code != 404 {
		t.Errorf("GET after delete = %d, want 404", code)
	}

	// A restart keeps users, apps and versions; routes and bundles are rebuilt
	// in the new, empty Redis.
	p.stop()
	p = startPlatform(t, data, home, "--idle-timeout", "1s")
	if code, body := p.get("keep", "/"); code != 200 || !strings.Contains(body, "kept") {
		t.Errorf("after restart GET keep/ = %d %s\nserver log:\n%s", code, body, p.logs)
	}
	p.mustCLI("login", "--username", "alice", "--password", "correct horse")
	if out := p.mustCLI("whoami"); strings.TrimSpace(out) != "alice" {
		t.Errorf("whoami after restart = %q", out)
	}
}

func TestAPIJSONOverHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	p := startPlatform(t, t.TempDir(), t.TempDir())
	body := `{"username":"carol","password":"long enough"}`
	res, err := http.Post("http://127.0.0.1:"+p.port+"/gofastapi.v1.AuthService/Signup", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var got struct {
		User  struct{ Username string }
		Token string
	}
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil || res.StatusCode != 200 {
		t.Fatalf("signup over JSON: %d %v", res.StatusCode, err)
	}
	if got.User.Username != "carol" || !strings.HasPrefix(got.Token, "gfa_") {
		t.Errorf("signup over JSON = %+v", got)
	}
	// The same API answers gRPC over h2c on the same port.
	h2c := &http.Client{Transport: &http.Transport{Protocols: unencryptedHTTP2()}}
	grpcAuth := gofastapiv1connect.NewAuthServiceClient(h2c, "http://127.0.0.1:"+p.port, connect.WithGRPC())
	lr, err := grpcAuth.Login(context.Background(), connect.NewRequest(&v1.LoginRequest{Username: "carol", Password: "long enough"}))
	if err != nil || lr.Msg.GetUser().GetUsername() != "carol" {
		t.Errorf("Login over gRPC = %v, %v", lr, err)
	}
	if _, err := grpcAuth.Login(context.Background(), connect.NewRequest(&v1.LoginRequest{Username: "carol", Password: "wrong password"})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("Login over gRPC with a wrong password: %v, want Unauthenticated", err)
	}

	req, _ := http.NewRequest("POST", "http://127.0.0.1:"+p.port+"/gofastapi.v1.AppService/ListApps", strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	res2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res2.Body.Close()
	if res2.StatusCode != 401 {
		t.Errorf("ListApps without a token = %d, want 401", res2.StatusCode)
	}
	// A request that names no app says so (a misspelt field is dropped, so
	// it names none), rather than that no such app exists.
	req, _ = http.NewRequest("POST", "http://127.0.0.1:"+p.port+"/gofastapi.v1.AppService/GetApp", strings.NewReader(`{"idOrNam":"shop"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+got.Token)
	res3, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res3.Body)
	res3.Body.Close()
	if res3.StatusCode != 400 || !strings.Contains(string(b), "id_or_name is empty") {
		t.Errorf("GetApp naming no app = %d %s, want 400 saying id_or_name is empty", res3.StatusCode, b)
	}
}

func unencryptedHTTP2() *http.Protocols {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &p
}

// logBuffer collects the server's log for failure messages.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(b)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRunnersStartFromTheAgentBinary: with gofastapi-runner beside the
// platform's binary (as make build and TestMain put it), the pool starts
// runner agents from it, not from the whole platform binary.
func TestRunnersStartFromTheAgentBinary(t *testing.T) {
	p := startPlatform(t, t.TempDir(), t.TempDir(), "--debug-endpoints")
	p.waitWarm(1)
	warm, _ := p.runners(t)
	agent := filepath.Join(filepath.Dir(binary), "gofastapi-runner")
	var exes []string
	for _, pid := range warm[0].Pids {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil {
			t.Fatal(err)
		}
		if exe == agent {
			return
		}
		exes = append(exes, exe)
	}
	t.Errorf("a warm runner's processes run %q, none %s", exes, agent)
}

// TestDeployFailureNamesItsStage deploys while the bundle store is down:
// the deploy stops at the publish stage and says so, with what the app
// serves meanwhile, instead of a bare internal error.
func TestDeployFailureNamesItsStage(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	rs, err := embedded.StartRedis(context.Background(), "redis-server")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Stop)
	src := t.TempDir()
	p := startPlatform(t, t.TempDir(), t.TempDir(), "--redis-url", rs.URL())
	p.mustCLI("signup", "--username", "erin", "--password", "erin's password")
	app := writeFile(t, src, "staged.py", fmt.Sprintf(helloApp, "v1"))
	p.mustCLI("deploy", app)

	rs.Stop()
	writeFile(t, src, "staged.py", fmt.Sprintf(helloApp, "v2"))
	out, err := p.cli("deploy", app)
	if err == nil || !strings.Contains(out, "deploy failed at the publish stage: an internal error (in the server's log); the app still serves what it served before; deploy again") {
		t.Errorf("deploy with Redis down: err %v, output:\n%s", err, out)
	}
	if !strings.Contains(out, "validate") || !strings.Contains(out, "store") {
		t.Errorf("the stages before publish are not shown:\n%s", out)
	}
}

// platformDB opens the platform database of the platform whose data
// directory is data (its embedded store's socket), to look at it directly.
func platformDB(t *testing.T, data string) *mongo.Database {
	t.Helper()
	mc, err := mongo.Connect(options.Client().ApplyURI((&url.URL{Scheme: "mongodb", Host: filepath.Join(data, "mongo.sock"), Path: "/"}).String()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mc.Disconnect(context.Background()) })
	return mc.Database("gofastapi")
}
