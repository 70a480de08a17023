//go:build !linux

package pidfd

import (
	"errors"
	"os"
	"syscall"
)

// Process is unavailable outside Linux.
type Process struct{ pid int }

// Open fails with errors.ErrUnsupported outside Linux.
func Open(pid int) (*Process, error) { return nil, errors.ErrUnsupported }

// Pid is the process id the pidfd was opened for.
func (p *Process) Pid() int { return p.pid }

// Signal fails: there is no pidfd.
func (p *Process) Signal(sig syscall.Signal) error { return errors.ErrUnsupported }

// Exited reports true: there is no process to watch.
func (p *Process) Exited() bool { return true }

// Wait returns at once.
func (p *Process) Wait() {}

// Close does nothing.
func (p *Process) Close() error { return os.ErrClosed }
