package runner

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestKillAll ends a user's processes, and only theirs: a process of
// another user lives on, and every thread of this process is still root
// afterwards, however many times it ran (the threads that became the user
// are gone, and the main thread never was one of them).
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
	other := start(1900065021)
	for i := range 50 {
		victim := start(1900065020)
		if err := (&RunAs{UID: 1900065020, GID: 1900065020}).KillAll(); err != nil {
			t.Fatal(err)
		}
		if err := victim.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("round %d: the user's process ended with %v, want killed", i, err)
		}
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("another user's process: %v", err)
	}
	threads, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, status := range threads {
		b, err := os.ReadFile(status)
		if err != nil {
			continue // a thread that ended meanwhile
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "Uid:") && strings.Fields(line)[1] != "0" {
				t.Errorf("%s: %s", status, line)
			}
		}
	}
	if err := (&RunAs{UID: 1900065020, GID: 1900065020}).KillAll(); err != nil {
		t.Errorf("with no process left: %v", err)
	}
}
