package runner

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// testWaitLimit only keeps a broken test from hanging; nothing is timed against it.
const testWaitLimit = 60 * time.Second

// startZygote runs a zygote from ZygoteCommand and returns its socket and
// pid once it serves.
func startZygote(t *testing.T) (socket string, pid int) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "z")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd, socket, err := ZygoteCommand("/usr/bin/python3", dir)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadBytes('\n')
	if err != nil {
		t.Fatalf("zygote handshake: %v", err)
	}
	var hs ZygoteHandshake
	if err := json.Unmarshal(line, &hs); err != nil || hs.Event != "listening" || hs.Pid != cmd.Process.Pid {
		t.Fatalf("zygote handshake %q (%v), want listening with pid %d", line, err, cmd.Process.Pid)
	}
	return socket, hs.Pid
}

func TestZygoteRefusesBadRequests(t *testing.T) {
	socket, _ := startZygote(t)
	good, _ := json.Marshal(forkRequest{Workdir: t.TempDir(), Env: map[string]string{"HOME": "/"}})
	tests := []struct {
		name    string
		msg     []byte
		fds     int
		wantErr string
	}{
		{name: "no fds", msg: good, fds: 0, wantErr: "4 fds"},
		{name: "too few fds", msg: good, fds: 3, wantErr: "4 fds"},
		{name: "too many fds", msg: good, fds: 5, wantErr: "4 fds"},
		{name: "not json", msg: []byte("fork please"), fds: 4, wantErr: "JSONDecodeError"},
		{name: "workdir not a string", msg: []byte(`{"workdir": 1, "env": {}}`), fds: 4, wantErr: `{"workdir": str, "env": {str: str}}`},
		{name: "env values not strings", msg: []byte(`{"workdir": "/", "env": {"A": 1}}`), fds: 4, wantErr: `{"workdir": str, "env": {str: str}}`},
		{name: "uid root", msg: []byte(`{"workdir": "/", "env": {}, "uid": 0, "gid": 1000}`), fds: 4, wantErr: `optional positive int "uid"`},
		{name: "gid not a number", msg: []byte(`{"workdir": "/", "env": {}, "uid": 1000, "gid": "0"}`), fds: 4, wantErr: `optional positive int "uid"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("unixpacket", socket)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// Pipes whose write ends go to the zygote: EOF on the read ends
			// afterwards shows it closed what it was sent.
			var reads, writes []*os.File
			var fds []int
			for range tt.fds {
				r, w, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				reads, writes = append(reads, r), append(writes, w)
				fds = append(fds, int(w.Fd()))
			}
			var oob []byte
			if len(fds) > 0 {
				oob = unix.UnixRights(fds...)
			}
			if _, _, err := conn.(*net.UnixConn).WriteMsgUnix(tt.msg, oob, nil); err != nil {
				t.Fatal(err)
			}
			closeFiles(writes)
			_ = conn.SetDeadline(time.Now().Add(testWaitLimit))
			rep, err := readForkReply(conn.(*net.UnixConn))
			if err != nil {
				t.Fatalf("read reply: %v", err)
			}
			if rep.Pid != 0 || !strings.Contains(rep.Error, tt.wantErr) {
				t.Errorf("reply %+v, want an error containing %q", rep, tt.wantErr)
			}
			if _, err := conn.Read(make([]byte, 64)); err != io.EOF {
				t.Errorf("after the error: read %v, want EOF (connection closed)", err)
			}
			for i, r := range reads {
				_ = r.SetDeadline(time.Now().Add(testWaitLimit))
				if _, err := r.Read(make([]byte, 1)); err != io.EOF {
					t.Errorf("pipe %d: read %v, want EOF (zygote closed its end)", i, err)
				}
			}
		})
	}
}

func TestForkPythonReportsExitStatus(t *testing.T) {
	socket, zygotePid := startZygote(t)
	tests := []struct {
		name   string
		end    func(t *testing.T, p *pipes, proc process)
		reason string
	}{
		{
			// Before a load command, EOF on fd 3 means the agent is gone.
			name:   "agent closes fd 3",
			end:    func(t *testing.T, p *pipes, proc process) { p.cmdW.Close() },
			reason: "exit status 0",
		},
		{
			name:   "killed",
			end:    func(t *testing.T, p *pipes, proc process) { proc.kill() },
			reason: "killed by SIGKILL",
		},
		{
			name:   "terminated",
			end:    func(t *testing.T, p *pipes, proc process) { proc.terminate() },
			reason: "killed by SIGTERM",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			workdir := t.TempDir()
			p, err := newPipes()
			if err != nil {
				t.Fatal(err)
			}
			defer p.closeParentEnds()
			ctx, cancel := context.WithTimeout(context.Background(), testWaitLimit)
			defer cancel()
			proc, err := forkPython(ctx, socket, workdir, pythonEnv(workdir), nil, p)
			p.closeChildEnds()
			if err != nil {
				t.Fatalf("forkPython: %v", err)
			}
			ev, err := bufio.NewReader(p.evR).ReadBytes('\n')
			if err != nil {
				t.Fatalf("read listening event: %v", err)
			}
			var got event
			if err := json.Unmarshal(ev, &got); err != nil || got.Event != "listening" || got.Pid != proc.pid() {
				t.Fatalf("first event %q, want listening with pid %d", ev, proc.pid())
			}
			if ppid := parentOf(t, proc.pid()); ppid != zygotePid {
				t.Errorf("forked Python's parent is %d, want the zygote %d", ppid, zygotePid)
			}
			if pgid, _ := unix.Getpgid(proc.pid()); pgid != proc.pid() {
				t.Errorf("forked Python's process group is %d, want its own (%d)", pgid, proc.pid())
			}
			// Same session as everything else, as an exec'd Python.
			mine, _ := unix.Getsid(0)
			if sid, _ := unix.Getsid(proc.pid()); sid != mine {
				t.Errorf("forked Python's session is %d, want this process's (%d)", sid, mine)
			}
			tt.end(t, p, proc)
			py := &python{status: proc.wait()}
			if diff := cmp.Diff(tt.reason, py.exitReason()); diff != "" {
				t.Errorf("exit reason (-want +got):\n%s", diff)
			}
			proc.kill() // after exit: must send nothing, and not fail
		})
	}
}

// parentOf reads pid's parent from /proc.
func parentOf(t *testing.T, pid int) int {
	t.Helper()
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// After the parenthesized command name: state, then the parent's pid.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		t.Fatalf("parse /proc/%d/stat: %v", pid, err)
	}
	return ppid
}
