package pidfd

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Process is an open pidfd. Its methods are safe for concurrent use.
type Process struct {
	pid int
	f   *os.File
}

// Open opens a pidfd for pid. It returns os.ErrProcessDone if there is no
// such process (any more).
func Open(pid int) (*Process, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil, os.ErrProcessDone
	}
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	// Non-blocking, so os.NewFile registers it with the runtime's poller and
	// Wait parks a goroutine, not a thread.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("pidfd %d: %w", pid, err)
	}
	return &Process{pid: pid, f: os.NewFile(uintptr(fd), "pidfd")}, nil
}

// Pid is the process id the pidfd was opened for.
func (p *Process) Pid() int { return p.pid }

// Signal sends sig to the process. It returns os.ErrProcessDone if the
// process has exited, and os.ErrClosed after Close.
func (p *Process) Signal(sig syscall.Signal) error {
	rc, err := p.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		// The kernel accepts signals for an exited process until it is
		// reaped; say it is done either way.
		if readable(fd) {
			serr = unix.ESRCH
			return
		}
		serr = unix.PidfdSendSignal(int(fd), sig, nil, 0)
	})
	if err != nil {
		return err
	}
	if errors.Is(serr, unix.ESRCH) {
		return os.ErrProcessDone
	}
	return serr
}

// Exited reports whether the process has exited (or p was closed).
func (p *Process) Exited() bool {
	rc, err := p.f.SyscallConn()
	if err != nil {
		return true
	}
	exited := true
	if err := rc.Control(func(fd uintptr) { exited = readable(fd) }); err != nil {
		return true
	}
	return exited
}

// Wait blocks until the process has exited or p is closed.
func (p *Process) Wait() {
	rc, err := p.f.SyscallConn()
	if err != nil {
		return
	}
	// Read calls the function again each time the poller says the pidfd is
	// readable, until it returns true; it returns early if p is closed.
	_ = rc.Read(readable)
}

// Close releases the pidfd. Wait calls in progress return.
func (p *Process) Close() error { return p.f.Close() }

// readable polls fd without waiting; an error other than EINTR counts as
// readable, so that no caller waits forever on a broken pidfd.
func readable(fd uintptr) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err != nil || n > 0
	}
}
