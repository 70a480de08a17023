package launch_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/runner/internal/pidfd"
	"github.com/gofastapi/gofastapi/runner/launch"
)

// openPidfd opens a pidfd for pid, closed when the test ends.
func openPidfd(t *testing.T, pid int) *pidfd.Process {
	t.Helper()
	p, err := pidfd.Open(pid)
	if err != nil {
		t.Fatalf("pidfd for %d: %v", pid, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// fdsApp lists its process's open fds and what they are, without inode
// numbers ("pipe:", "socket:", "anon_inode:[eventpoll]", "/dev/null").
const fdsApp = `import os
import re
from fastapi import FastAPI

app = FastAPI()


@app.get("/fds")
def fds():
    out = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue  # listdir's own fd, closed by now
        out[name] = re.sub(r"\[\d+\]$", "", target)
    return out
`

// A forked runner must hold exactly what an exec'd one holds: its pipes,
// /dev/null, its listener and what asyncio and the request opened, and
// nothing of the zygote (its socket, its connections to other agents,
// other runners' pipes).
func TestForkedRunnerHoldsOnlyItsOwnFds(t *testing.T) {
	rd := startRedis(t)
	version := rd.putBundle(t, files("app.py", fdsApp))
	// Other runners forked first: the zygote holds connections to their
	// agents, which the next child must not inherit.
	for range 2 {
		startRunner(t, modes[1], rd.runnerURL, 0)
	}
	got := map[string]any{}
	forEachMode(t, func(t *testing.T, m mode) {
		r, _ := startRunner(t, m, rd.runnerURL, 0)
		if _, err := specialize(t, r, &v1.SpecializeRequest{Version: version, Entrypoint: "app.py"}); err != nil {
			t.Fatalf("Specialize: %v", err)
		}
		_, fds := get(t, r.AppAddr(), "/fds")
		t.Logf("fds: %v", fds)
		got[m.name] = fds
		// fds 0-4 are the runner's; above them only the app's listener,
		// asyncio's and the request's sockets and epoll may be open.
		for fd, what := range fds.(map[string]any) {
			if len(fd) == 1 && fd <= "4" {
				continue
			}
			if what != "socket:" && what != "anon_inode:[eventpoll]" {
				t.Errorf("fd %s is %v, which the runner did not open", fd, what)
			}
		}
	})
	if diff := cmp.Diff(got["exec"], got["zygote"]); diff != "" {
		t.Errorf("forked runner's fds differ from an exec'd runner's (-exec +zygote):\n%s", diff)
	}
}

// stateApp answers with what a runner must not share with others: its
// environment, its module state, its random numbers.
const stateApp = `import os
import random
from fastapi import FastAPI

app = FastAPI()
SEEN = []


@app.get("/state")
def state():
    SEEN.append(os.environ["NAME"])
    return {
        "name": os.environ["NAME"],
        "seen": SEEN,
        "pid": os.getpid(),
        "home": os.environ["HOME"],
        "cwd": os.getcwd(),
        "random": random.getrandbits(64),
        "env": sorted(os.environ),
    }
`

func TestZygoteRunnersAreIsolated(t *testing.T) {
	const n = 4
	rd := startRedis(t)
	version := rd.putBundle(t, files("app.py", stateApp))
	runners := make([]*launch.Runner, n)
	cfgs := make([]launch.Config, n)
	for i := range runners {
		runners[i], cfgs[i] = startRunner(t, modes[1], rd.runnerURL, 0)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, r := range runners {
		wg.Go(func() {
			_, errs[i] = r.Specialize(context.Background(), &v1.SpecializeRequest{
				Version: version, Entrypoint: "app.py", Env: map[string]string{"NAME": fmt.Sprint("r", i)},
			})
		})
	}
	wg.Wait()
	randoms := map[float64]bool{}
	for i, r := range runners {
		if errs[i] != nil {
			t.Fatalf("Specialize runner %d: %v", i, errs[i])
		}
		name := fmt.Sprint("r", i)
		get(t, r.AppAddr(), "/state")
		status, body := get(t, r.AppAddr(), "/state")
		if status != http.StatusOK {
			t.Fatalf("runner %d: GET /state: status %d", i, status)
		}
		got := body.(map[string]any)
		randoms[got["random"].(float64)] = true
		delete(got, "random")
		want := map[string]any{
			"name": name,
			"seen": []any{name, name},
			"pid":  float64(r.AppPid()),
			"home": cfgs[i].WorkDir,
			"cwd":  filepath.Join(cfgs[i].WorkDir, "app"),
			"env":  []any{"HOME", "LANG", "NAME", "PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "TMPDIR"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("runner %d: GET /state (-want +got):\n%s", i, diff)
		}
	}
	if len(randoms) != n {
		t.Errorf("%d runners drew %d distinct random numbers: the random module was not reseeded after fork", n, len(randoms))
	}
}

func TestZygoteDeathSparesRunners(t *testing.T) {
	rd := startRedis(t)
	version := rd.putBundle(t, files("app.py", helloApp+`
import sys

print("about to be killed", file=sys.stderr)
`))
	z, err := startZygote(filepath.Join(t.TempDir(), "zygote"))
	if err != nil {
		t.Fatalf("StartZygote: %v", err)
	}
	t.Cleanup(z.Stop)
	serving, _ := startRunnerFrom(t, z.Socket(), rd.runnerURL, 0)
	if _, err := specialize(t, serving, &v1.SpecializeRequest{Version: version, Entrypoint: "app.py"}); err != nil {
		t.Fatalf("Specialize: %v", err)
	}
	warm, _ := startRunnerFrom(t, z.Socket(), rd.runnerURL, 0)

	if err := syscall.Kill(z.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-z.Done()
	if err := z.ExitErr(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("zygote ExitErr = %v, want it to say it was killed", err)
	}

	// The serving runner serves on, and the warm one can still load an app.
	if status, _ := get(t, serving.AppAddr(), "/hello"); status != http.StatusOK {
		t.Errorf("serving runner after the zygote died: GET /hello status %d", status)
	}
	if _, err := specialize(t, warm, &v1.SpecializeRequest{Version: version, Entrypoint: "app.py"}); err != nil {
		t.Fatalf("Specialize the warm runner after the zygote died: %v", err)
	}
	if status, _ := get(t, warm.AppAddr(), "/hello"); status != http.StatusOK {
		t.Errorf("warm runner after the zygote died: GET /hello status %d", status)
	}
	for _, r := range []*launch.Runner{serving, warm} {
		select {
		case <-r.Done():
			t.Errorf("runner %d ended with the zygote: %v", r.Pid(), r.ExitErr())
		default:
		}
	}

	// No new runner without a zygote.
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if _, err := launch.Start(ctx, launch.Config{
		Command: []string{os.Args[0]}, Env: []string{agentEnv + "=1"}, Zygote: z.Socket(),
		WorkDir: filepath.Join(t.TempDir(), "runner"), RedisURL: rd.runnerURL,
	}); err == nil || !strings.Contains(err.Error(), "zygote") {
		t.Errorf("Start from a dead zygote: %v, want an error about the zygote", err)
	}

	// Without its parent nobody knows the exit status; the agent says what
	// it knows: that Python exited, and the app's last words.
	if err := syscall.Kill(warm.AppPid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-warm.Done():
	case <-time.After(waitLimit):
		t.Fatal("Done not closed after Python was killed")
	}
	if err := warm.ExitErr(); err == nil || !strings.Contains(err.Error(), "app process exited: exit status unknown") ||
		!strings.Contains(err.Error(), "about to be killed") {
		t.Errorf("ExitErr = %v, want it to say Python exited, with its last stderr line", err)
	}

	// Stop still ends an orphaned runner gracefully.
	serving.Stop(10 * time.Second)
	if err := serving.ExitErr(); err != nil {
		t.Errorf("ExitErr after graceful Stop = %v, want nil", err)
	}
	if alive(serving.AppPid()) {
		t.Errorf("Python %d still alive after Stop", serving.AppPid())
	}
}

// An agent killed without a chance to stop its Python: the forked Python,
// outside the agent's process group, must not outlive it.
func TestForkedPythonDiesWithAgent(t *testing.T) {
	rd := startRedis(t)
	version := rd.putBundle(t, files("app.py", helloApp))
	tests := []struct {
		name string
		load bool
	}{
		{name: "warm"},
		{name: "serving", load: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := startRunner(t, modes[1], rd.runnerURL, 0)
			if tt.load {
				if _, err := specialize(t, r, &v1.SpecializeRequest{Version: version, Entrypoint: "app.py"}); err != nil {
					t.Fatalf("Specialize: %v", err)
				}
			}
			app := openPidfd(t, r.AppPid())
			if err := syscall.Kill(r.Pid(), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-r.Done()
			// Not Stop: the launcher's last resort would hide what Python
			// does by itself once its fd 3 reaches EOF.
			exited := make(chan struct{})
			go func() {
				app.Wait()
				close(exited)
			}()
			select {
			case <-exited:
			case <-time.After(waitLimit):
				app.Close()
				<-exited
				t.Fatalf("Python %d outlived its agent", r.AppPid())
			}
		})
	}
}

func TestStartZygoteFails(t *testing.T) {
	tests := []struct {
		name    string
		python  string
		dir     func(t *testing.T) string
		wantErr string
	}{
		{
			name:    "missing interpreter",
			python:  "/nonexistent/python3",
			dir:     func(t *testing.T) string { return filepath.Join(t.TempDir(), "zygote") },
			wantErr: "/nonexistent/python3",
		},
		{
			name:    "socket path too long",
			python:  "/usr/bin/python3",
			dir:     func(t *testing.T) string { return filepath.Join(t.TempDir(), strings.Repeat("d", 100)) },
			wantErr: "longer than",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			dir := tt.dir(t)
			_, err := launch.StartZygote(ctx, launch.ZygoteConfig{Python: tt.python, Dir: dir})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("StartZygote: %v, want an error containing %q", err, tt.wantErr)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("Dir after failed StartZygote: %v, want not exist", err)
			}
		})
	}
}
