package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/proto/appaddr"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// intruderApp asks the listeners on ports (which any app could find in
// /proc/net/tcp) to specialize with version: what an app would do to take
// over the runners the pool has yet to hand out.
const intruderApp = `import http.client
import json
from fastapi import FastAPI

app = FastAPI()

@app.get("/hijack")
def hijack(version: str, ports: str):
    body = json.dumps({"appId": "x", "slug": "x", "version": version, "entrypoint": "app.py"})
    tried = []
    for port in [int(p) for p in ports.split(",")]:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("POST", "/gofastapi.v1.RunnerService/Specialize", body, {"Content-Type": "application/json"})
            r = c.getresponse()
            tried.append({"port": port, "status": r.status, "body": r.read(300).decode(errors="replace")})
        except Exception as e:
            tried.append({"port": port, "error": repr(e)})
    return tried
`

// TestAppsCannotSpecializeRunners: an app that calls the agents of the
// runners on its machine is refused by every one, and the warm runner it
// tried to take still starts another user's app.
func TestAppsCannotSpecializeRunners(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	ctx := context.Background()
	p := startPlatform(t, t.TempDir(), t.TempDir(), "--warm", "2", "--debug-endpoints")
	mallory, _ := p.signup(t, "mallory", "mallory's password")
	if _, _, err := p.deployFiles(mallory, "intruder", map[string]string{"app.py": intruderApp}); err != nil {
		t.Fatal(err)
	}
	versions, err := p.as(mallory).apps.ListVersions(ctx, connect.NewRequest(&v1.ListVersionsRequest{IdOrName: "intruder"}))
	if err != nil {
		t.Fatal(err)
	}
	p.waitWarm(2)
	// The agents' control listeners: the runners' first processes'.
	warm, claimed := p.runners(t)
	var ports []string
	for _, r := range append(warm, claimed...) {
		for _, port := range listeningPorts(t, r.Pids[0]) {
			ports = append(ports, strconv.Itoa(port))
		}
	}
	code, body := p.get("intruder", "/hijack?version="+versions.Msg.GetVersions()[0].GetVersion()+"&ports="+strings.Join(ports, ","))
	var tried []struct {
		Port   int
		Status int
		Body   string
		Error  string
	}
	if err := json.Unmarshal([]byte(body), &tried); code != 200 || err != nil {
		t.Fatalf("GET intruder/hijack = %d %s (%v)", code, body, err)
	}
	agents := 0
	for _, a := range tried {
		if strings.Contains(a.Body, "appAddr") {
			t.Errorf("port %d specialized the intruder's version: %d %s", a.Port, a.Status, a.Body)
		}
		if strings.Contains(a.Body, "unauthenticated") {
			agents++
		}
	}
	// Two warm runners' agents and the intruder's own, at least.
	if agents < 3 || agents != len(tried) {
		t.Errorf("%d agents of %d refused the intruder; want every runner's (3 or more): %+v", agents, len(tried), tried)
	}

	alice, _ := p.signup(t, "alice", "alice's password")
	if _, _, err := p.deployFiles(alice, "victim", map[string]string{"app.py": fmt.Sprintf(helloApp, "alice's")}); err != nil {
		t.Fatalf("another user's deploy after the intruder's attempt: %v", err)
	}
	if code, body := p.get("victim", "/"); code != 200 || !strings.Contains(body, "alice's") {
		t.Errorf("GET victim/ = %d %s", code, body)
	}
}

// proberApp connects to the address it is given, as a runner reports its
// app's listener ("unix:" and a socket's path, or host:port), and sends a
// GET: what an app would do to reach another app but through the gateway,
// without its request limits and with X-Forwarded-For of its choosing.
const proberApp = `import http.client
from fastapi import FastAPI

app = FastAPI()
socket = http.client.socket  # past the import allowlist, as a hostile app would

class Connection(http.client.HTTPConnection):
    def __init__(self, addr):
        self.unix = addr.removeprefix("unix:") if addr.startswith("unix:") else None
        super().__init__("victim" if self.unix else addr, timeout=5)

    def connect(self):
        if self.unix is None:
            return super().connect()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(self.unix)

@app.get("/reach")
def reach(addr: str):
    try:
        c = Connection(addr)
        c.request("GET", "/", headers={"X-Forwarded-For": "10.0.0.1"})
        r = c.getresponse()
        return {"answer": f"{r.status} {r.read(300).decode(errors='replace')}"}
    except Exception as e:
        return {"error": repr(e)}
`

// TestAppsCannotReachEachOther: an app that knows where another user's app
// listens cannot open it; only the gateway can. The app listens on no TCP
// port, but on a Unix socket in its runner's directory, which no other
// app's user may enter; and where apps share the platform's user
// (--runner-uids off, or not root), whom no directory keeps out, no app
// makes a Unix socket at all (the runner's seccomp filter): neither to
// another app's socket nor to the platform's own in its data directory.
func TestAppsCannotReachEachOther(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Run("own users", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("apps have users of their own only when the platform runs as root")
		}
		t.Parallel()
		testAppsCannotReachEachOther(t)
	})
	t.Run("shared user", func(t *testing.T) {
		t.Parallel()
		testAppsCannotReachEachOther(t, "--runner-uids", "off")
	})
}

// testAppsCannotReachEachOther deploys a victim and a prober on a platform
// started with args, and has the prober reach for the victim's runner at
// the address the platform's pool has for it, and for the platform's API
// socket in its data directory.
func testAppsCannotReachEachOther(t *testing.T, args ...string) {
	ctx := context.Background()
	data := t.TempDir()
	p := startPlatform(t, data, t.TempDir(), append([]string{"--debug-endpoints"}, args...)...)
	alice, _ := p.signup(t, "alice", "alice's password")
	if _, _, err := p.deployFiles(alice, "victim", map[string]string{"app.py": fmt.Sprintf(helloApp, "alice's")}); err != nil {
		t.Fatal(err)
	}
	mallory, _ := p.signup(t, "mallory", "mallory's password")
	if _, _, err := p.deployFiles(mallory, "prober", map[string]string{"app.py": proberApp}); err != nil {
		t.Fatal(err)
	}
	victim, err := p.as(alice).apps.GetApp(ctx, connect.NewRequest(&v1.GetAppRequest{IdOrName: "victim"}))
	if err != nil {
		t.Fatal(err)
	}
	if code, body := p.get("victim", "/"); code != 200 || !strings.Contains(body, "alice's") {
		t.Fatalf("GET victim/ through the gateway = %d %s", code, body)
	}
	_, claimed := p.runners(t)
	var at *debugRunner
	for i, r := range claimed {
		if r.AppID == victim.Msg.GetApp().GetId() {
			at = &claimed[i]
		}
	}
	if at == nil {
		t.Fatalf("no runner serves the victim: %+v", claimed)
	}
	for _, pid := range at.Pids[1:] { // the app's, after its agent
		if ports := listeningPorts(t, pid); len(ports) > 0 {
			t.Errorf("the victim's process %d listens on TCP ports %v", pid, ports)
		}
	}
	for _, addr := range []string{at.Addr, appaddr.Unix(filepath.Join(data, "api.sock"))} {
		code, body := p.get("prober", "/reach?addr="+url.QueryEscape(addr))
		var got struct{ Answer, Error string }
		if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil {
			t.Fatalf("GET prober/reach = %d %s (%v)", code, body, err)
		}
		if !strings.Contains(got.Error, "PermissionError") {
			t.Errorf("the prober reaching %s: %+v; want a PermissionError", addr, got)
		}
	}
}

// listeningPorts lists the TCP ports pid listens on, from its open sockets'
// inodes and the kernel's table of IPv4 sockets.
func listeningPorts(t *testing.T, pid int) []int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	table, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		t.Fatal(err)
	}
	var ports []int
	for _, line := range strings.Split(string(table), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] { // 0A: listening
			continue
		}
		_, hexPort, _ := strings.Cut(f[1], ":")
		port, err := strconv.ParseInt(hexPort, 16, 32)
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, int(port))
	}
	return ports
}

// hogApp shows its process's limits, and holds on to memory on request.
const hogApp = `import os
import pathlib

from fastapi import FastAPI

app = FastAPI()
held = []

@app.get("/limits")
def limits():
    with open("/proc/self/limits") as fh:
        return {"limits": fh.read()}

@app.get("/hold")
def hold(mb: int):
    held.append(bytearray(mb << 20))
    return {"held_mb": sum(len(b) for b in held) >> 20}

@app.get("/write")
def write(path: str):
    if path == "TMPDIR":
        path = os.path.join(os.environ["TMPDIR"], "scratch")
    try:
        pathlib.Path(path).write_text("x")
        return {"wrote": True}
    except OSError as e:
        return {"error": type(e).__name__}

@app.get("/fill")
def fill(mb: int):
    chunk = bytes(1 << 20)
    try:
        with open("fill.bin", "wb") as fh:
            for _ in range(mb):
                fh.write(chunk)
        return {"wrote_mb": mb}
    except OSError as e:
        return {"error": e.strerror}
    finally:
        os.remove("fill.bin")
`

// TestAppLimits: an app's process has the limits of --app-memory and the
// runners' processes and file size, so an app that takes more memory than
// it may gets MemoryError (a 500) and goes on serving, instead of taking
// the machine's memory.
func TestAppLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	// Above its directory's 256 MB, which is memory too (a tmpfs) and,
	// where the app has a control group of its own, counts towards it.
	p := startPlatform(t, t.TempDir(), t.TempDir(), "--app-memory", "512M")
	tok, _ := p.signup(t, "hogg", "hogg's password")
	p.deploy(t, tok, "hog", hogApp)
	code, body := p.get("hog", "/limits")
	var got struct{ Limits string }
	if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil {
		t.Fatalf("GET hog/limits = %d %s", code, body)
	}
	want := []string{`Max data size\s+536870912\s+536870912\s+bytes`, `Max file size\s+1073741824\s+1073741824\s+bytes`}
	if os.Geteuid() == 0 { // runners run as users of their own
		want = append(want, `Max processes\s+512\s+512\s+processes`)
	}
	for _, re := range want {
		if !regexp.MustCompile(re).MatchString(got.Limits) {
			t.Errorf("the app's limits lack %s:\n%s", re, got.Limits)
		}
	}
	if code, body := p.get("hog", "/hold?mb=700"); code != 500 {
		t.Errorf("GET hog/hold?mb=700 over a 512M limit = %d %s; want 500 (MemoryError)", code, body)
	}
	if code, body := p.get("hog", "/hold?mb=16"); code != 200 || !strings.Contains(body, `"held_mb":16`) {
		t.Errorf("GET hog/hold?mb=16 after the refused one = %d %s; want the same process serving, holding 16 MB", code, body)
	}

	// It changes files only in its own directory: its working directory,
	// its TMPDIR there, and /dev/null; not the machine's /tmp or /dev/shm.
	outside := []string{filepath.Join(os.TempDir(), "gofastapi-confine-"+t.Name()), "/dev/shm/gofastapi-confine-" + t.Name()}
	for _, path := range outside {
		t.Cleanup(func() { os.Remove(path) })
	}
	for path, want := range map[string]string{"note.txt": `"wrote":true`, "TMPDIR": `"wrote":true`, "/dev/null": `"wrote":true`,
		outside[0]: `"error":"PermissionError"`, outside[1]: `"error":"PermissionError"`} {
		if code, body := p.get("hog", "/write?path="+url.QueryEscape(path)); code != 200 || !strings.Contains(body, want) {
			t.Errorf("the app writing %s: %d %s; want %s", path, code, body, want)
		}
	}
	// And its own directory holds 256 MB at most (a file system of its own,
	// with a user of its own).
	if os.Geteuid() == 0 {
		if code, body := p.get("hog", "/fill?mb=300"); code != 200 || !strings.Contains(body, "No space left on device") {
			t.Errorf("the app writing 300 MB in its directory: %d %s; want no space left", code, body)
		}
	}
	if code, body := p.get("hog", "/fill?mb=16"); code != 200 || !strings.Contains(body, `"wrote_mb":16`) {
		t.Errorf("the app writing 16 MB in its directory: %d %s", code, body)
	}
}

// escaperApp asks the runners' zygote, its parent, found by its command
// line in /proc, to fork a runner in a directory of the app's choosing,
// without GOFASTAPI_CONFINE: a runner outside any confinement, which the
// app would then have load a module of its own (measured with the
// platform run as an unprivileged user, before the runners' seccomp
// filter: that runner read the platform's key from its data directory).
// It answers with what the zygote said, or the error that stopped it.
const escaperApp = `import json, os
from fastapi import FastAPI

app = FastAPI()
socket = __import__("socket")  # past the import allowlist, as a hostile app would
array = __import__("array")

@app.get("/escape")
def escape():
    argv = open(f"/proc/{os.getppid()}/cmdline", "rb").read().split(b"\0")
    if b"--zygote" not in argv:
        return {"error": "no zygote"}
    zygote = argv[argv.index(b"--zygote") + 1].decode()
    work = os.path.join(os.getcwd(), "escaped")
    os.makedirs(work, exist_ok=True)
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(zygote)
    except OSError as e:
        return {"error": repr(e)}
    pipes = [os.pipe() for _ in range(4)]
    fds = [pipes[0][0]] + [w for _, w in pipes[1:]]
    request = json.dumps({"workdir": work, "env": {"PATH": "/usr/bin:/bin"}}).encode()
    s.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    answer = s.recv(4096).decode()
    for r, w in pipes:  # the forked runner sees EOF on its commands and ends
        os.close(r)
        os.close(w)
    return {"zygote": answer}
`

// TestAppsCannotLeaveTheirConfinement: an app sharing the platform's user
// (--runner-uids off, or not root), whom the zygote serves, cannot have
// the zygote fork it an unconfined runner: it makes no Unix socket.
func TestAppsCannotLeaveTheirConfinement(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	p := startPlatform(t, t.TempDir(), t.TempDir(), "--runner-uids", "off")
	mallory, _ := p.signup(t, "mallory", "mallory's password")
	p.deploy(t, mallory, "escaper", escaperApp)
	code, body := p.get("escaper", "/escape")
	if code != 200 || !strings.Contains(body, "PermissionError") {
		t.Errorf("GET escaper/escape = %d %s; want a PermissionError", code, body)
	}
}
