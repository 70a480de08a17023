package launch_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/runner"
	"github.com/gofastapi/gofastapi/runner/launch"
)

const whoamiApp = `import os
from fastapi import FastAPI

app = FastAPI()


@app.get("/whoami")
def whoami():
    try:
        open(os.environ["PRIVATE"]).read()
        private = "read"
    except PermissionError:
        private = "denied"
    return {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "private": private}
`

// passableDir is a new directory that the runners' users may pass through
// (mode 0711 up to the temporary directory), to a runner's own below it.
func passableDir(t *testing.T) string {
	root := t.TempDir()
	for d := root; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o711)
	}
	return root
}

// startAs starts an agent in mode m whose Python runs as cfg.RunAs, in a
// directory under root (see passableDir), with cfg's other settings and
// the agent's extra args; the runner is stopped when the test ends.
func startAs(t *testing.T, m mode, rd *testRedis, root string, cfg launch.Config, args ...string) *launch.Runner {
	t.Helper()
	cfg.Command = append([]string{os.Args[0]}, args...)
	cfg.Env = []string{agentEnv + "=1"}
	cfg.Python = "/usr/bin/python3"
	cfg.Zygote = m.zygoteSocket(t)
	cfg.WorkDir = filepath.Join(root, "runner")
	cfg.RedisURL = rd.runnerURL
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	r, err := launch.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { r.Stop(waitLimit) })
	return r
}

// TestRunAs runs a runner's Python as an unprivileged user, in both modes:
// the app runs as that user, with no supplementary groups, and cannot read
// a file private to the platform's user, while its own files load.
func TestRunAs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to change users")
	}
	rd := startRedis(t)
	forEachMode(t, func(t *testing.T, m mode) {
		// The runner's user passes through to its own directory only.
		root := passableDir(t)
		private := filepath.Join(root, "platform.key")
		if err := os.WriteFile(private, []byte("secret"), 0o600); err != nil {
			t.Fatal(err)
		}
		runAs := &runner.RunAs{UID: 1900067000, GID: 1900067001}
		version := rd.putBundle(t, files("app.py", whoamiApp))
		r := startAs(t, m, rd, root, launch.Config{RunAs: runAs})
		res, err := specialize(t, r, &v1.SpecializeRequest{AppId: "a", Slug: "a", Version: version, Entrypoint: "app.py",
			Env: map[string]string{"PRIVATE": private}})
		if err != nil {
			t.Fatalf("Specialize: %v", err)
		}
		status, got := get(t, res.GetAppAddr(), "/whoami")
		want := map[string]any{"uid": float64(runAs.UID), "gid": float64(runAs.GID), "groups": []any{}, "private": "denied"}
		if diff := cmp.Diff(want, got); status != http.StatusOK || diff != "" {
			t.Errorf("GET /whoami: %d (-want +got):\n%s", status, diff)
		}
	})
}

const daemonApp = `import os
import time
from fastapi import FastAPI

app = FastAPI()


@app.get("/spawn")
def spawn():
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        # A session of its own, and a grandchild: out of every process
        # group the runner's launcher or agent knows of.
        os.setsid()
        if os.fork() == 0:
            os.write(w, str(os.getpid()).encode())
            os.close(w)
            while True:
                time.sleep(1)
        os._exit(0)
    os.waitpid(child, 0)
    os.close(w)
    return {"pid": int(os.read(r, 32))}
`

// TestNothingOutlivesTheRunner: a process the app started in a session of
// its own (a daemon: setsid and a second fork, out of every process group
// the agent and its launcher signal) ends with the runner, in both modes,
// so that an app nobody uses runs nothing, and nothing of it is left for
// the next runner that gets its user.
func TestNothingOutlivesTheRunner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to change users")
	}
	rd := startRedis(t)
	version := rd.putBundle(t, files("app.py", daemonApp))
	forEachMode(t, func(t *testing.T, m mode) {
		r := startAs(t, m, rd, passableDir(t), launch.Config{RunAs: &runner.RunAs{UID: 1900067002, GID: 1900067002}})
		if _, err := specialize(t, r, &v1.SpecializeRequest{Version: version, Entrypoint: "app.py"}); err != nil {
			t.Fatalf("Specialize: %v", err)
		}
		_, got := get(t, r.AppAddr(), "/spawn")
		pid := int(got.(map[string]any)["pid"].(float64))
		if !alive(pid) {
			t.Fatalf("the app's daemon %d is not running", pid)
		}
		r.Stop(waitLimit)
		deadline := time.Now().Add(waitLimit)
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("the app's daemon %d outlived its runner", pid)
		}
	})
}

const groupApp = `import os
import time
from fastapi import FastAPI

app = FastAPI()


@app.get("/group")
def group():
    with open("/proc/self/cgroup") as f:
        return {"cgroup": f.read()}


@app.get("/spin")
def spin(n: int, seconds: float):
    """n processes spin for seconds of wall time; returns the CPU they took."""
    children = []
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                pass
            os._exit(0)
        children.append(pid)
    cpu = 0.0
    for pid in children:
        _, _, usage = os.wait4(pid, 0)
        cpu += usage.ru_utime + usage.ru_stime
    return {"cpu": cpu}


@app.get("/hog")
def hog(n: int, mb: int):
    """n processes each touch mb megabytes; returns how many got through."""
    children = []
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            block = bytearray(mb << 20)
            for i in range(0, len(block), 4096):
                block[i] = 1
            time.sleep(0.5)
            os._exit(0)
        children.append(pid)
    ok = 0
    for pid in children:
        _, status = os.waitpid(pid, 0)
        ok += os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    return {"ok": ok}


@app.get("/bloat")
def bloat(child_mb: int, mb: int):
    """A child holds child_mb, then this process touches mb more."""
    if os.fork() == 0:
        block = bytearray(child_mb << 20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        time.sleep(60)
        os._exit(0)
    time.sleep(0.5)
    block = bytearray(mb << 20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    return {"held_mb": mb}
`

// TestAppProcessesShareTheirBounds: the processes an app forks share one
// CPU bound and one memory bound, its control group's, where each would
// otherwise have rlimits of its own: four spinning processes take at most
// the app's half core between them, and three that each stay within the
// app's memory cannot all have it at once.
func TestAppProcessesShareTheirBounds(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to change users")
	}
	if err := runner.CanGroupApps(); err != nil {
		t.Skipf("needs control groups: %v", err)
	}
	rd := startRedis(t)
	version := rd.putBundle(t, files("app.py", groupApp))
	forEachMode(t, func(t *testing.T, m mode) {
		r := startAs(t, m, rd, passableDir(t), launch.Config{RunAs: &runner.RunAs{UID: 1900067040, GID: 1900067040}, AppMemory: 400 << 20},
			"--app-cpu", "0.5")
		if _, err := specialize(t, r, &v1.SpecializeRequest{Version: version, Entrypoint: "app.py"}); err != nil {
			t.Fatalf("Specialize: %v", err)
		}
		_, got := get(t, r.AppAddr(), "/group")
		t.Logf("the app's groups:\n%s", got.(map[string]any)["cgroup"])
		// Four spinners for a second of wall time would take up to every
		// core between them; the bound leaves them half a core, plus a
		// period's slack. (Noise can only make them take less.)
		_, got = get(t, r.AppAddr(), "/spin?n=4&seconds=1")
		if cpu := got.(map[string]any)["cpu"].(float64); cpu > 0.75 {
			t.Errorf("four spinning processes took %.2fs of CPU in 1s, want at most the app's half core", cpu)
		}
		// 3 x 300 MB, each below the app's 400 MB.
		_, got = get(t, r.AppAddr(), "/hog?n=3&mb=300")
		if ok := got.(map[string]any)["ok"].(float64); ok >= 3 {
			t.Errorf("all 3 processes held 300 MB at once, past the app's 400 MB")
		}
		name := fmt.Sprintf("gofastapi-runner-%d", launch.AgentPid(r))
		groups, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
		nested, _ := filepath.Glob("/sys/fs/cgroup/*/*/*/" + name)
		if groups = append(groups, nested...); len(groups) < 2 {
			t.Errorf("the app's groups: %v, want its memory and pids groups at least", groups)
		}
		// The app itself, with what its child holds, over the memory the
		// two share: the kernel kills the larger, the app's own process,
		// and the runner says why.
		if res, err := appClient(r.AppAddr()).Get("http://app/bloat?child_mb=120&mb=320"); err == nil {
			res.Body.Close()
			t.Errorf("GET /bloat: %d, want the app killed over its memory", res.StatusCode)
		}
		select {
		case <-r.Done():
		case <-time.After(waitLimit):
			t.Fatal("the app over its memory is still running")
		}
		if err := r.ExitErr(); err == nil || !strings.Contains(err.Error(), "went over its memory limit (400 MB, all of them together)") {
			t.Errorf("ExitErr = %v, want it to say the app went over its memory", err)
		}
		// The agent removed its groups as it ended.
		for _, g := range groups {
			if _, err := os.Stat(g); err == nil {
				t.Errorf("%s is left after the runner ended", g)
			}
		}
	})
}
