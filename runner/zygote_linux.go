package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gofastapi/gofastapi/runner/internal/pidfd"
)

// zygoteStatusLimit bounds the wait for the zygote's report of how a forked
// Python exited, once its pidfd said it did. The zygote reaps and reports
// as soon as SIGCHLD reaches it; only a zygote that is gone or wedged makes
// the agent wait this long, and then the status is unknown.
const zygoteStatusLimit = time.Second

// forkedProcess is a Python the zygote forked for this agent. The agent is
// not its parent: it signals it through a pidfd, which never reaches a
// process that reused the pid, learns of its exit by polling that pidfd,
// and learns the exit status from the zygote. Python leads a process group
// of its own, so signals for the runner go to that group,
// as in exec mode they go to the agent's.
type forkedProcess struct {
	pidNum int
	pidfd  *pidfd.Process // nil if Python was gone before it could be opened
	conn   *net.UnixConn
	status chan exitStatus // the zygote's report; buffered
}

// forkPython asks the zygote listening at socket for a Python for workdir
// whose fds 3, 4, 1 and 2 are p's child ends, and closes those once sent.
// If the zygote forked but anything fails later, the child still ends: it
// exits at EOF on fd 3, which the caller's closing of p's parent ends makes.
func forkPython(ctx context.Context, socket, workdir string, env []string, runAs *RunAs, p *pipes) (process, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unixpacket", socket)
	if err != nil {
		return nil, fmt.Errorf("connect to zygote: %w", err)
	}
	conn := c.(*net.UnixConn)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	f, err := requestFork(conn, workdir, env, runAs, p)
	stop()
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("fork from zygote: %w", ctx.Err())
		}
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	go f.readStatus()
	return f, nil
}

func requestFork(conn *net.UnixConn, workdir string, env []string, runAs *RunAs, p *pipes) (*forkedProcess, error) {
	fr := forkRequest{Workdir: workdir, Env: envMap(env)}
	if runAs != nil {
		fr.UID, fr.GID = &runAs.UID, &runAs.GID
	}
	req, err := json.Marshal(fr)
	if err != nil {
		return nil, fmt.Errorf("encode fork request: %w", err)
	}
	var fds []int
	for _, f := range p.childEnds() {
		// Fd also puts the file, shared with Python, in blocking mode,
		// which is what Python expects of its stdout.
		fds = append(fds, int(f.Fd()))
	}
	if _, _, err := conn.WriteMsgUnix(req, unix.UnixRights(fds...), nil); err != nil {
		return nil, fmt.Errorf("send fork request to zygote: %w", err)
	}
	// The zygote holds its copies now and closes them once it forked, so
	// that after its answer only Python holds these ends.
	p.closeChildEnds()
	rep, err := readForkReply(conn)
	switch {
	case err != nil:
		return nil, fmt.Errorf("read zygote's answer: %w", err)
	case rep.Error != "":
		return nil, fmt.Errorf("zygote refused to fork: %s", rep.Error)
	case rep.Pid <= 0:
		return nil, errors.New("zygote answered without a pid")
	}
	pidfd, err := openPidfd(rep.Pid, p.evR)
	if err != nil {
		return nil, err
	}
	return &forkedProcess{pidNum: rep.Pid, pidfd: pidfd, conn: conn, status: make(chan exitStatus, 1)}, nil
}

// readForkReply reads one message from the zygote.
func readForkReply(conn *net.UnixConn) (forkReply, error) {
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		return forkReply{}, err
	}
	var rep forkReply
	if err := json.Unmarshal(buf[:n], &rep); err != nil {
		return forkReply{}, fmt.Errorf("malformed message from zygote: %.100q", buf[:n])
	}
	return rep, nil
}

// openPidfd opens a pidfd for the forked Python, or returns nil if Python
// has exited already. Between the zygote's answer and pidfd_open the zygote
// could have reaped Python and the pid have been reused; but Python holds
// the only write end of the events pipe, so if that pipe is still open
// after pidfd_open, the pidfd is Python's.
func openPidfd(pid int, events *os.File) (*pidfd.Process, error) {
	proc, err := pidfd.Open(pid)
	if errors.Is(err, os.ErrProcessDone) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if hungUp(events) {
		proc.Close()
		return nil, nil
	}
	return proc, nil
}

// hungUp reports whether every write end of the pipe whose read end is f
// has been closed; a pipe it cannot poll counts as hung up.
func hungUp(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return true
	}
	hup := true
	_ = rc.Control(func(fd uintptr) {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, 0)
		for errors.Is(err, unix.EINTR) {
			n, err = unix.Poll(pfd, 0)
		}
		hup = err != nil || (n > 0 && pfd[0].Revents&unix.POLLHUP != 0)
	})
	return hup
}

func (f *forkedProcess) pid() int { return f.pidNum }

func (f *forkedProcess) terminate() { f.signalGroup(unix.SIGTERM) }

func (f *forkedProcess) kill() { f.signalGroup(unix.SIGKILL) }

// signalGroup signals Python's process group, and Python itself in case the
// app moved it to another group, while Python lives: the group id is
// Python's pid (it called setpgid), which is Python's own as long as Python
// has not exited. After that, nothing is sent.
func (f *forkedProcess) signalGroup(sig unix.Signal) {
	if f.pidfd == nil || f.pidfd.Exited() {
		return
	}
	_ = unix.Kill(-f.pidNum, sig)
	_ = f.pidfd.Signal(sig)
}

func (f *forkedProcess) wait() exitStatus {
	if f.pidfd != nil {
		f.pidfd.Wait()
		// Python has exited. Until the zygote reaps it, its pid is still
		// taken, and after that as long as anything of its process group
		// lives; so this reaches only what the app left running (a pid is
		// reused only after the kernel went through all others).
		_ = unix.Kill(-f.pidNum, unix.SIGKILL)
		f.pidfd.Close()
	}
	t := time.NewTimer(zygoteStatusLimit)
	defer t.Stop()
	var st exitStatus
	select {
	case st = <-f.status:
	case <-t.C:
		st = exitStatus{why: "the zygote did not report it"}
	}
	f.conn.Close()
	return st
}

// readStatus reads the zygote's report of Python's exit.
func (f *forkedProcess) readStatus() {
	rep, err := readForkReply(f.conn)
	switch {
	case err == nil && rep.Status != nil:
		f.status <- exitStatus{ws: syscall.WaitStatus(*rep.Status), known: true}
	case errors.Is(err, io.EOF):
		f.status <- exitStatus{why: "the zygote exited before reporting it"}
	case err != nil:
		f.status <- exitStatus{why: "no report from the zygote"}
	default:
		f.status <- exitStatus{why: "malformed report from the zygote"}
	}
}
