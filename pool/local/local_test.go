package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gofastapi/gofastapi/runner"
	"github.com/gofastapi/gofastapi/runner/launch"
)

// TestMain makes the test binary the runner agent when called as
// `<test binary> runner ...`, as the Backend's Command does below.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "runner" {
		if err := runner.Main(context.Background(), os.Args[2:], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "runner:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// waitLimit only keeps a broken test from hanging; nothing is timed against it.
const waitLimit = 60 * time.Second

func newBackend(t *testing.T, noZygote bool) *Backend {
	t.Helper()
	b, err := New(Config{
		Command: []string{os.Args[0], "runner"},
		Python:  "/usr/bin/python3",
		Dir:     filepath.Join(t.TempDir(), "runners"),
		// Warm runners only dial Redis (and may fail to): Start needs no store.
		RedisURL:     "redis://runner:x@127.0.0.1:1/0",
		ReadyTimeout: 10 * time.Second,
		NoZygote:     noZygote,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

func start(t *testing.T, b *Backend) *launch.Runner {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	inst, err := b.Start(ctx)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	r := inst.(*launch.Runner)
	t.Cleanup(func() { r.Stop(10 * time.Second) })
	return r
}

// currentZygote is the zygote the Backend forks from now.
func currentZygote(t *testing.T, b *Backend) *launch.Zygote {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.zygote == nil || b.zygote.z == nil {
		t.Fatal("Backend has no zygote")
	}
	return b.zygote.z
}

// parentPid reads pid's parent from /proc.
func parentPid(t *testing.T, pid int) int {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// After the parenthesized command name: state, then the parent's pid.
	var state string
	var ppid int
	if _, err := fmt.Sscan(string(stat[strings.LastIndexByte(string(stat), ')')+1:]), &state, &ppid); err != nil {
		t.Fatalf("parse /proc/%d/stat: %v", pid, err)
	}
	return ppid
}

func TestBackendForksFromZygoteAndRestartsIt(t *testing.T) {
	if !zygoteSupported {
		t.Skip("no zygote on this OS")
	}
	b := newBackend(t, false)
	r1 := start(t, b)
	r2 := start(t, b)
	z := currentZygote(t, b)
	for _, r := range []*launch.Runner{r1, r2} {
		if got := parentPid(t, r.AppPid()); got != z.Pid() {
			t.Errorf("Python %d has parent %d, want the zygote %d", r.AppPid(), got, z.Pid())
		}
	}
	if _, err := os.Stat(z.Socket()); err != nil {
		t.Errorf("zygote socket: %v", err)
	}

	// A dead zygote is replaced at the next Start; runners it forked live on.
	if err := syscall.Kill(z.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-z.Done()
	r3 := start(t, b)
	z2 := currentZygote(t, b)
	if z2 == z {
		t.Fatal("Start after the zygote died did not start a new one")
	}
	if got := parentPid(t, r3.AppPid()); got != z2.Pid() {
		t.Errorf("Python %d has parent %d, want the new zygote %d", r3.AppPid(), got, z2.Pid())
	}
	for _, r := range []*launch.Runner{r1, r2} {
		select {
		case <-r.Done():
			t.Errorf("runner %d ended with the zygote: %v", r.Pid(), r.ExitErr())
		default:
		}
	}

	for _, r := range []*launch.Runner{r1, r2, r3} {
		r.Stop(10 * time.Second)
	}
	b.Close()
	<-z2.Done()
	if err := z2.ExitErr(); err != nil {
		t.Errorf("zygote ExitErr after Close = %v, want nil", err)
	}
	gone := []string{filepath.Dir(z.Socket()), filepath.Dir(z2.Socket())}
	if b.ownRoot {
		gone = append(gone, b.workRoot)
	}
	for _, dir := range gone {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after Close: %v, want not exist", dir, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if _, err := b.Start(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
}

func TestBackendWorkDirs(t *testing.T) {
	tests := []struct {
		name     string
		noZygote bool
	}{
		{name: "zygote"},
		{name: "exec", noZygote: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, tt.noZygote)
			start(t, b)
			if isTmpfs(tmpfsParent) && !strings.HasPrefix(b.workRoot, tmpfsParent+"/gofastapi-") {
				t.Errorf("work root %s, want a directory under %s", b.workRoot, tmpfsParent)
			}
			fi, err := os.Stat(b.workRoot)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o700 {
				t.Errorf("work root mode %v, want 0700", fi.Mode().Perm())
			}
			entries, err := os.ReadDir(b.workRoot)
			if err != nil {
				t.Fatal(err)
			}
			var runners int
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), "runner-") {
					runners++
				}
			}
			if runners != 1 {
				t.Errorf("work root holds %d runner dirs, want 1", runners)
			}
			b.mu.Lock()
			hasZygote := b.zygote != nil
			b.mu.Unlock()
			if hasZygote != (!tt.noZygote && zygoteSupported) {
				t.Errorf("Backend started a zygote: %v, want %v", hasZygote, !hasZygote)
			}
		})
	}
}

func TestRemoveStale(t *testing.T) {
	parent := t.TempDir()
	gone := exec.Command("/bin/true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dirs := map[string]bool{ // name: whether removeStale must keep it
		fmt.Sprintf("gofastapi-%d-1", gone.Process.Pid): false,
		fmt.Sprintf("gofastapi-%d-2", os.Getpid()):      true,
		"gofastapi-notapid-3":                           true,
		"other-1-4":                                     true,
	}
	for name := range dirs {
		if err := os.MkdirAll(filepath.Join(parent, name, "zygote-5"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// As root: a stale runner's user's processes (what its app left in a
	// session of its own) end; a live platform's runner's do not.
	var left, live *exec.Cmd
	if os.Geteuid() == 0 {
		runnerOf := func(dir string, uid uint32) *exec.Cmd {
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(dir, int(uid), int(uid)); err != nil {
				t.Fatal(err)
			}
			return sleepAs(t, uid)
		}
		left = runnerOf(filepath.Join(parent, fmt.Sprintf("gofastapi-%d-1", gone.Process.Pid), "runner-6"), 1900067030)
		live = runnerOf(filepath.Join(parent, fmt.Sprintf("gofastapi-%d-2", os.Getpid()), "runner-7"), 1900067031)
	}
	removeStale(parent)
	for name, keep := range dirs {
		_, err := os.Stat(filepath.Join(parent, name))
		if exists := err == nil; exists != keep {
			t.Errorf("%s exists after removeStale: %v, want %v", name, exists, keep)
		}
	}
	if left != nil {
		if err := left.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Errorf("a stale runner's user's process ended with %v, want killed", err)
		}
		if err := live.Process.Signal(syscall.Signal(0)); err != nil {
			t.Errorf("a live runner's user's process: %v", err)
		}
	}
}

// TestRunnerUsersPassOverBusyOnes: a runner gets a user that has no
// process, such as one another platform on this machine gave its own
// runner, and none when every user has one.
func TestRunnerUsersPassOverBusyOnes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start processes as other users")
	}
	const base = 1900066100
	sleepAs(t, base)
	sleepAs(t, base+2)
	b := &Backend{cfg: Config{RunnerUIDs: UIDRange{Base: base, Count: 3}}}
	for range 4 {
		got, err := b.runAs()
		if err != nil || got == nil || got.UID != base+1 || got.GID != base+1 {
			t.Fatalf("runAs() = %v, %v; want the one user without a process, %d", got, err, base+1)
		}
	}
	sleepAs(t, base+1)
	if got, err := b.runAs(); err == nil || !strings.Contains(err.Error(), "every runner user") {
		t.Errorf("runAs() with every user busy = %v, %v; want an error saying so", got, err)
	}
}

// sleepAs starts a process of user (and group) uid that sleeps until the
// test ends.
func sleepAs(t *testing.T, uid uint32) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "100")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}
