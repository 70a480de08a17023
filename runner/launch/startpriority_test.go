package launch_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/runner"
	"github.com/gofastapi/gofastapi/runner/launch"
)

// priorityApp reports the scheduling policy its import ran under, that of
// a thread it started then, and that of the thread serving /policy. With
// WAIT_RAISED set, its import first waits (5 s at most) until the agent's
// guard has raised it, which it does right after sending the load command.
const priorityApp = `import os, threading, time
from fastapi import FastAPI

deadline = time.monotonic() + 5
while os.environ.get("WAIT_RAISED") and os.sched_getscheduler(0) == os.SCHED_OTHER and time.monotonic() < deadline:
    time.sleep(0.001)
IMPORTED = os.sched_getscheduler(0)
STARTED = []
t = threading.Thread(target=lambda: STARTED.append(os.sched_getscheduler(0)))
t.start()
t.join()

app = FastAPI()


@app.get("/policy")
def policy():
    return {"imported": IMPORTED, "started": STARTED[0], "now": os.sched_getscheduler(0)}
`

// Scheduling policies as Python reports them: with the reset-on-fork flag
// the agent sets when it raises a thread, and that an unprivileged
// process keeps when it lowers its own.
const (
	policyNormal      = float64(unix.SCHED_NORMAL)
	policyNormalReset = float64(unix.SCHED_NORMAL | unix.SCHED_RESET_ON_FORK)
	policyFIFOReset   = float64(unix.SCHED_FIFO | unix.SCHED_RESET_ON_FORK)
)

// TestStartPriority runs the app's load and first answer at real-time
// priority (an agent running as root may): its import runs under
// SCHED_FIFO, a thread it starts does not, and the first answer ends it,
// or else the agent's guard at the end of its window; the agent's own
// threads, raised with the app's, are back at normal priority once it has
// answered Specialize. With the priority off, nothing is raised.
func TestStartPriority(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: an agent raises its Python's priority only with CAP_SYS_NICE")
	}
	rd := startRedis(t)
	version := rd.putBundle(t, files("app.py", priorityApp))
	root := t.TempDir()
	for d := root; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o711)
	}
	tests := []struct {
		name   string
		window time.Duration
		// guard: no request until the agent's guard has lowered every thread.
		guard bool
		// want is /policy's first answer, then the policy of the thread
		// serving the second request.
		want      map[string]any
		wantAfter float64
	}{
		{"the first answer ends it", time.Minute, false,
			map[string]any{"imported": policyFIFOReset, "started": policyNormal, "now": policyFIFOReset}, policyNormalReset},
		{"the guard ends it", 50 * time.Millisecond, true,
			map[string]any{"imported": policyFIFOReset, "started": policyNormal, "now": policyNormal}, policyNormal},
		{"off", -1, false,
			map[string]any{"imported": policyNormal, "started": policyNormal, "now": policyNormal}, policyNormal},
	}
	forEachMode(t, func(t *testing.T, m mode) {
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r, _ := startConfigured(t, launch.Config{
					Zygote: m.zygoteSocket(t), WorkDir: filepath.Join(root, fmt.Sprintf("runner-%s-%d", m.name, i)), RedisURL: rd.runnerURL,
					RunAs: &runner.RunAs{UID: 1900067011, GID: 1900067011}, StartPriority: tt.window,
				})
				env := map[string]string{}
				if tt.window > 0 {
					env["WAIT_RAISED"] = "1"
				}
				res, err := specialize(t, r, &v1.SpecializeRequest{Version: version, Entrypoint: "app.py", Env: env})
				if err != nil {
					t.Fatalf("Specialize: %v", err)
				}
				if raised := threadsRaised(t, r.Pid()); raised > 0 {
					t.Errorf("%d of the agent's threads at the start's priority after it answered Specialize", raised)
				}
				if tt.guard {
					ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
					defer cancel()
					for raised := threadsRaised(t, r.AppPid()); raised > 0; raised = threadsRaised(t, r.AppPid()) {
						if ctx.Err() != nil {
							t.Fatalf("%d of Python's threads still at real-time priority after %v", raised, waitLimit)
						}
						time.Sleep(10 * time.Millisecond)
					}
				}
				_, got := get(t, res.GetAppAddr(), "/policy")
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("first GET /policy (-want +got):\n%s", diff)
				}
				_, got = get(t, res.GetAppAddr(), "/policy")
				if now := got.(map[string]any)["now"]; now != tt.wantAfter {
					t.Errorf("second GET /policy: now %v, want %v", now, tt.wantAfter)
				}
				if raised := threadsRaised(t, r.AppPid()); raised > 0 {
					t.Errorf("%d of Python's threads at real-time priority after its first answer", raised)
				}
			})
		}
	})
}

// threadsRaised counts the threads of process pid under SCHED_FIFO at the
// start's priority (1; the agent's guard thread has 2).
func threadsRaised(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		tid, _ := strconv.Atoi(e.Name())
		if attr, err := unix.SchedGetAttr(tid, 0); err == nil && attr.Policy == unix.SCHED_FIFO && attr.Priority == 1 {
			n++
		}
	}
	return n
}
