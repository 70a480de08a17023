package pidfd_test

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/gofastapi/gofastapi/runner/internal/pidfd"
)

func TestProcessLifecycle(t *testing.T) {
	cmd := exec.Command("/bin/sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p, err := pidfd.Open(cmd.Process.Pid)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer p.Close()
	if p.Pid() != cmd.Process.Pid {
		t.Errorf("Pid() = %d, want %d", p.Pid(), cmd.Process.Pid)
	}
	if p.Exited() {
		t.Fatal("Exited() = true for a running process")
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("Signal: %v", err)
	}
	p.Wait()
	if !p.Exited() {
		t.Error("Exited() = false after Wait returned")
	}
	// Exited before it was reaped: the pid is still this process's.
	if err := p.Signal(syscall.SIGKILL); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after exit = %v, want os.ErrProcessDone", err)
	}
	_ = cmd.Wait()
	if err := p.Signal(syscall.SIGKILL); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after reaping = %v, want os.ErrProcessDone", err)
	}
	if _, err := pidfd.Open(cmd.Process.Pid); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Open of a reaped process = %v, want os.ErrProcessDone", err)
	}
}

func TestCloseEndsWait(t *testing.T) {
	cmd := exec.Command("/bin/sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	p, err := pidfd.Open(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		p.Wait()
		close(done)
	}()
	p.Close()
	<-done
	if !p.Exited() {
		t.Error("Exited() = false after Close")
	}
	if err := p.Signal(syscall.SIGKILL); err == nil {
		t.Error("Signal after Close succeeded")
	}
}
