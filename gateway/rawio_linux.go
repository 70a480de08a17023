//go:build linux && !race

package gateway

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// rawConn is a socket connection (TCP, or a runner's Unix socket) whose reads and writes enter the kernel with
// RawSyscall instead of through the Go scheduler's syscall bookkeeping.
//
// The gateway's sockets are non-blocking: a read or write returns at once,
// and waiting for a socket is left to the runtime's poller (RawConn parks
// the goroutine until the socket is ready, honouring deadlines, as net.Conn
// does). So these calls never block, and telling the scheduler about each
// one buys nothing, yet costs plenty: entering a syscall wakes the runtime's
// monitor thread (sysmon) whenever all Ps were idle, and a woken sysmon
// polls every 20 us for the next millisecond or more. A gateway proxying
// many small requests goes idle and busy thousands of times a second, so
// sysmon never settled: it took 14-15% of the gateway's CPU under load
// (perf, wrk -c64), and about 1% with rawConn. Per proxied request the
// gateway process spent 126-137 us of CPU instead of 152-176 us (six
// alternating rounds each, same runner).
//
// Only plain reads and writes change; everything else (deadlines, Close,
// addresses, socket options) is the wrapped connection's. Race-detector
// builds keep net.Conn's reads and writes (rawio_other.go): those tell the
// detector that what one goroutine wrote to a socket happens before what
// another reads from it, which raw system calls would not.
type rawConn struct {
	net.Conn
	rc syscall.RawConn
}

// rawIO returns c as a rawConn if it is a TCP or Unix socket connection,
// else c.
func rawIO(c net.Conn) net.Conn {
	var sc syscall.Conn
	switch c := c.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	return &rawConn{Conn: c, rc: rc}
}

// Read reads what the socket holds, waiting in the poller while it holds
// nothing.
func (c *rawConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait until readable
			}
			n, errno = int(r), e
			return true
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, c.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of b, waiting in the poller whenever the socket's
// buffer is full.
func (c *rawConn) Write(b []byte) (int, error) {
	done := 0
	var errno syscall.Errno
	err := c.rc.Write(func(fd uintptr) bool {
		for done < len(b) {
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[done])), uintptr(len(b)-done))
			switch e {
			case 0:
				done += int(r)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // wait until writable
			default:
				errno = e
				return true
			}
		}
		return true
	})
	switch {
	case err != nil:
		return done, err
	case errno != 0:
		return done, c.opError("write", errno)
	}
	return done, nil
}

// opError wraps errno as net.Conn's methods do, so errors.Is(err,
// syscall.ECONNRESET) and the like hold as before.
func (c *rawConn) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}
