package runner

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestRemoveStaleAppGroups deletes the groups of agents that are gone, and
// keeps those of agents that live.
func TestRemoveStaleAppGroups(t *testing.T) {
	if err := CanGroupApps(); err != nil {
		t.Skipf("needs control groups: %v", err)
	}
	gone := exec.Command("/bin/true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	limits := AppLimits{Memory: 1 << 30, Processes: 10}
	stale, err := newAppGroup(appGroupName(gone.Process.Pid), 0, limits)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stale.remove)
	live, err := newAppGroup(appGroupName(os.Getpid()), 0, limits)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(live.remove)
	if got, err := os.ReadFile(filepath.Join(live.dirs[1], "pids.max")); err != nil || string(got) != "10\n" {
		t.Errorf("pids.max = %q (%v), want 10", got, err)
	}
	RemoveStaleAppGroups()
	for _, dir := range stale.dirs {
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("%s of a gone agent is left", dir)
		}
	}
	for _, dir := range live.dirs {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("%s of a live agent: %v", dir, err)
		}
	}
}
