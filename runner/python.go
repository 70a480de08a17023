package runner

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

//go:embed bootstrap.py
var bootstrapSource []byte

// event is one line Python writes on fd 4.
type event struct {
	Event   string `json:"event"` // "listening", "ready" or "error"
	Port    int    `json:"port,omitempty"`
	Pid     int    `json:"pid,omitempty"`
	Message string `json:"message,omitempty"`
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
}

// loadCommand is the one command the agent writes on fd 3.
type loadCommand struct {
	Cmd    string            `json:"cmd"` // "load"
	Dir    string            `json:"dir"`
	Module string            `json:"module"`
	File   string            `json:"file"` // the entrypoint, for messages
	Env    map[string]string `json:"env"`
}

// python is the running bootstrap process. Its stdout and stderr go to the
// log sink; events arrive on events, which is closed when Python closes fd 4
// (in practice: when it exits).
type python struct {
	cmd    *exec.Cmd
	cmds   *os.File // write end of Python's fd 3
	events chan event

	exited  chan struct{} // closed once the process has been waited for
	waitErr error         // why it exited; read only after exited is closed

	logs sync.WaitGroup // stdout and stderr forwarders

	loadOnce sync.Once
}

// startPython starts the bootstrap with interpreter path in workdir. The
// environment is scrubbed to what Python needs, so nothing of the agent's
// environment reaches the app.
func startPython(path, workdir string, sink *logSink) (*python, error) {
	script := filepath.Join(workdir, "bootstrap.py")
	if err := os.WriteFile(script, bootstrapSource, 0o600); err != nil {
		return nil, fmt.Errorf("write bootstrap: %w", err)
	}
	pathEnv := os.Getenv("PATH")
	if pathEnv == "" {
		pathEnv = "/usr/local/bin:/usr/bin:/bin"
	}
	// -I ignores PYTHON* variables and the user's site-packages, so -B and -u
	// repeat PYTHONDONTWRITEBYTECODE and PYTHONUNBUFFERED as flags; the
	// variables stay set for subprocesses the app starts.
	cmd := exec.Command(path, "-I", "-B", "-u", script)
	cmd.Dir = workdir
	cmd.Env = []string{
		"PATH=" + pathEnv,
		"LANG=C.UTF-8",
		"HOME=" + workdir,
		"PYTHONDONTWRITEBYTECODE=1",
		"PYTHONUNBUFFERED=1",
	}
	// Same process group as the agent (no Setpgid): signalling the group
	// reaches both. Pdeathsig ends Python if the agent dies without cleanup.
	cmd.SysProcAttr = pythonProcAttr()

	var toClose []*os.File
	closeAll := func() {
		for _, f := range toClose {
			f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			toClose = append(toClose, r, w)
		}
		return r, w, err
	}
	cmdR, cmdW, err1 := pipe()
	evR, evW, err2 := pipe()
	outR, outW, err3 := pipe()
	errR, errW, err4 := pipe()
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		closeAll()
		return nil, fmt.Errorf("create pipes: %w", err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.ExtraFiles = []*os.File{cmdR, evW} // fds 3 and 4
	if err := cmd.Start(); err != nil {
		closeAll()
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	// Python holds its own copies now; closing ours makes EOF mean "Python
	// (and whatever inherited the fds) is gone".
	for _, f := range []*os.File{cmdR, evW, outW, errW} {
		f.Close()
	}

	p := &python{
		cmd:    cmd,
		cmds:   cmdW,
		events: make(chan event, 4),
		exited: make(chan struct{}),
	}
	p.logs.Add(2)
	go p.forward(outR, "stdout", sink)
	go p.forward(errR, "stderr", sink)
	go p.readEvents(evR)
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *python) forward(r *os.File, stream string, sink *logSink) {
	defer p.logs.Done()
	defer r.Close()
	forwardLines(r, func(t time.Time, text []byte) { sink.line(t, stream, text) })
}

func (p *python) readEvents(r *os.File) {
	defer close(p.events)
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			ev = event{Event: "error", Message: "runner bootstrap sent a malformed event"}
		}
		p.events <- ev
	}
	// Anything after a read error is unknowable; the process exit tells the rest.
	_, _ = io.Copy(io.Discard, r)
}

// pid is Python's process id.
func (p *python) pid() int { return p.cmd.Process.Pid }

// load sends the load command. It may be sent once; fd 3 is closed after it.
func (p *python) load(cmd loadCommand) error {
	err := errors.New("load command already sent")
	p.loadOnce.Do(func() {
		cmd.Cmd = "load"
		var b []byte
		if b, err = json.Marshal(cmd); err != nil {
			return
		}
		_, err = p.cmds.Write(append(b, '\n'))
		if cerr := p.cmds.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// exitReason describes how Python exited. Call only after exited is closed.
func (p *python) exitReason() string {
	var ee *exec.ExitError
	if errors.As(p.waitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			if name := unix.SignalName(ws.Signal()); name != "" {
				return "killed by " + name
			}
			return "killed by " + ws.Signal().String()
		}
		return fmt.Sprintf("exit status %d", ee.ExitCode())
	}
	if p.waitErr != nil {
		return p.waitErr.Error()
	}
	return "exit status 0"
}

// terminated reports whether Python was ended by SIGTERM or SIGINT, which
// only a stop of the agent's process group sends. Call only after exited is
// closed.
func (p *python) terminated() bool {
	var ee *exec.ExitError
	if !errors.As(p.waitErr, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && (ws.Signal() == syscall.SIGTERM || ws.Signal() == syscall.SIGINT)
}

// stop asks Python to finish (SIGTERM: uvicorn completes in-flight requests)
// and kills it if it has not exited after grace. It returns once Python has
// exited.
func (p *python) stop(grace time.Duration) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// drainLogs waits until the last lines Python wrote were forwarded, or until
// limit passed: a subprocess of the app could keep stdout open forever.
func (p *python) drainLogs(limit time.Duration) {
	done := make(chan struct{})
	go func() {
		p.logs.Wait()
		close(done)
	}()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}
