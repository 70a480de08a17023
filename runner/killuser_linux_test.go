package runner

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKillAll ends a user's processes, and only theirs: a process of
// another user lives on; this process's main thread is still root however
// many times it ran, and the threads that became the user go.
func TestKillAll(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to change users")
	}
	start := func(uid uint32) *exec.Cmd {
		cmd := exec.Command("sleep", "100")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	other := start(1900067021)
	for i := range 50 {
		victim := start(1900067020)
		if err := (&RunAs{UID: 1900067020, GID: 1900067020}).KillAll(); err != nil {
			t.Fatal(err)
		}
		if err := victim.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("round %d: the user's process ended with %v, want killed", i, err)
		}
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("another user's process: %v", err)
	}
	// The main thread never changed user: to other processes its user is
	// the whole process's.
	if uids := threadUsers(t, fmt.Sprintf("/proc/self/task/%d/status", os.Getpid())); len(uids) > 0 {
		t.Errorf("the main thread is user %v", uids)
	}
	// The threads that did are on their way out (the runtime ends them
	// after their goroutine returned): they go.
	deadline := time.Now().Add(10 * time.Second)
	for uids := threadUsers(t, "/proc/self/task/*/status"); len(uids) > 0; uids = threadUsers(t, "/proc/self/task/*/status") {
		if time.Now().After(deadline) {
			t.Fatalf("threads of users %v are left", uids)
		}
		time.Sleep(time.Millisecond)
	}
	if err := (&RunAs{UID: 1900067020, GID: 1900067020}).KillAll(); err != nil {
		t.Errorf("with no process left: %v", err)
	}
}

// threadUsers lists the non-root users of the threads whose status files
// match pattern.
func threadUsers(t *testing.T, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	var uids []string
	for _, status := range files {
		b, err := os.ReadFile(status)
		if err != nil {
			continue // a thread that ended meanwhile
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" && f[1] != "0" {
				uids = append(uids, f[1])
			}
		}
	}
	return uids
}
