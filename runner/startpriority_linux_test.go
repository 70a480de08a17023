package runner

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestStartGuardKeepsItsThread: the guard's thread outlives the guard, at
// normal priority. Were it to end with it, the end of the thread that had
// started Python in exec mode would kill Python (its parent-death signal
// is SIGKILL), which happened in one CI run. As root the guard raises
// itself first; otherwise it gives up at once; its thread lives on either
// way.
func TestStartGuardKeepsItsThread(t *testing.T) {
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	for range 5 {
		r := raiseForStart(child.Process.Pid, 5*time.Millisecond)
		<-r.done
		r.mu.Lock()
		tid := r.guardTID
		r.mu.Unlock()
		task := fmt.Sprintf("/proc/self/task/%d", tid)
		// A thread that ends with its goroutine is gone within
		// microseconds; watch it for a while.
		for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
			if _, err := os.Stat(task); err != nil {
				t.Fatalf("the guard's thread %d ended with it: %v", tid, err)
			}
		}
		if attr, err := unix.SchedGetAttr(tid, 0); err != nil || attr.Policy != unix.SCHED_NORMAL {
			t.Fatalf("the guard's thread %d after the guard: %+v, %v; want normal priority", tid, attr, err)
		}
	}
}
