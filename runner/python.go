package runner

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

//go:embed bootstrap.py
var bootstrapSource []byte

// event is one line Python writes on fd 4.
type event struct {
	Event string `json:"event"` // "listening", "ready" or "error"
	// Port or Socket, in "listening", is where the app's listener is: a
	// TCP port, or the path of a Unix socket.
	Port    int    `json:"port,omitempty"`
	Socket  string `json:"socket,omitempty"`
	Pid     int    `json:"pid,omitempty"`
	Message string `json:"message,omitempty"`
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	// ImportMicros, in "ready", is how long importing the app's module took.
	ImportMicros int64 `json:"import_us,omitempty"`
}

// loadCommand is the one command the agent writes on fd 3.
type loadCommand struct {
	Cmd    string            `json:"cmd"` // "load"
	Dir    string            `json:"dir"`
	Module string            `json:"module"`
	File   string            `json:"file"` // the entrypoint, for messages
	Env    map[string]string `json:"env"`
	// Paths go at the end of the app's import path: its dependencies.
	Paths []string `json:"paths,omitempty"`
	// Limits are set on Python before it imports the app.
	Limits AppLimits `json:"limits"`
}

// process is the agent's handle on its Python: a child it started (exec
// mode) or a child of the zygote (see zygote.go).
type process interface {
	pid() int
	// terminate sends SIGTERM and kill SIGKILL: to Python in exec mode, where
	// the launcher signals the agent's whole process group; to Python's own
	// process group in zygote mode. After Python exited they do nothing.
	terminate()
	kill()
	// wait blocks until the process has exited and says how, as far as the
	// agent can know. It is called once.
	wait() exitStatus
}

// exitStatus is how Python exited. The status is unknown for a forked
// Python whose zygote died before reporting it: the agent is not its parent.
type exitStatus struct {
	ws    syscall.WaitStatus
	known bool
	why   string // when not known
}

// python is the running bootstrap process. Its stdout and stderr go to the
// log sink; events arrive on events, which is closed when Python closes fd 4
// (in practice: when it exits).
type python struct {
	proc   process
	user   *RunAs    // the app's own user, if it has one
	group  *appGroup // the app's control group, if it has one
	cmds   *os.File  // write end of Python's fd 3, open until Python exited
	events chan event

	exited chan struct{} // closed once the process has exited
	status exitStatus    // read only after exited is closed

	logs       sync.WaitGroup // stdout and stderr forwarders
	stderrDone chan struct{}  // closed when the stderr forwarder returned
	lastStderr atomic.Pointer[string]

	loadOnce sync.Once
}

// startPython starts the bootstrap for workdir: forked from the zygote at
// cfg.zygote if set, else by executing cfg.python. Either way Python gets
// the same scrubbed environment and the same fds, so nothing of the agent's
// environment reaches the app.
func startPython(ctx context.Context, cfg config, sink *logSink) (*python, error) {
	p, err := newPipes()
	if err != nil {
		return nil, err
	}
	var proc process
	env := runnerEnv(cfg.workdir, cfg.confine, cfg.depsCache)
	switch {
	case cfg.appSocket:
		env = append(env, "GOFASTAPI_APP_SOCKET="+cfg.socketPath())
	case cfg.appHost != "":
		env = append(env, "GOFASTAPI_APP_HOST="+cfg.appHost)
	}
	if cfg.zygote != "" {
		proc, err = forkPython(ctx, cfg.zygote, cfg.workdir, env, cfg.runAs, p)
	} else {
		proc, err = execPython(cfg.python, cfg.workdir, env, cfg.runAs, p)
	}
	// Python holds its own copies now (or failed to start); closing ours
	// makes EOF mean "Python (and whatever inherited the fds) is gone".
	p.closeChildEnds()
	if err != nil {
		p.closeParentEnds()
		return nil, err
	}

	py := &python{
		proc:       proc,
		user:       cfg.runAs,
		cmds:       p.cmdW,
		events:     make(chan event, 4),
		exited:     make(chan struct{}),
		stderrDone: make(chan struct{}),
	}
	py.logs.Add(2)
	go py.forward(p.outR, StreamStdout, sink, nil)
	go func() {
		defer close(py.stderrDone)
		py.forward(p.errR, StreamStderr, sink, &py.lastStderr)
	}()
	go py.readEvents(p.evR)
	go func() {
		st := proc.wait()
		if !st.known {
			// The last line the app wrote is all there is to say; give the
			// forwarder a moment to read it.
			waitLimit(py.stderrDone, logDrainLimit)
		}
		py.status = st
		close(py.exited)
		// Python is gone: fd 3 has no reader left to tell anything.
		py.cmds.Close()
	}()
	return py, nil
}

// pythonEnv is the whole environment Python gets: what it needs to run, and
// HOME. -I makes Python ignore PYTHON* variables, so the bootstrap repeats
// these two as flags; they stay set for subprocesses the app starts.
func pythonEnv(home string) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	return []string{
		"PATH=" + path,
		"LANG=C.UTF-8",
		"HOME=" + home,
		"PYTHONDONTWRITEBYTECODE=1",
		"PYTHONUNBUFFERED=1",
	}
}

// runnerEnv is the environment of a runner's Python: pythonEnv, and with
// confine GOFASTAPI_CONFINE=1, which has the bootstrap confine the process
// to workdir before it starts a thread (see confine_runner in
// bootstrap.py, which removes the variables): it changes files there only,
// and reads them there, in Python's and the system's directories, and in
// depsCache (if set), where its dependencies are, named in
// GOFASTAPI_CONFINE_READ.
func runnerEnv(workdir string, confine bool, depsCache string) []string {
	env := pythonEnv(workdir)
	if confine {
		env = append(env, "GOFASTAPI_CONFINE=1")
		if depsCache != "" {
			env = append(env, "GOFASTAPI_CONFINE_READ="+depsCache)
		}
	}
	return env
}

// pythonArgs are the interpreter flags for the bootstrap at script: isolated
// (-I), no bytecode files (-B), unbuffered output (-u).
func pythonArgs(script string) []string { return []string{"-I", "-B", "-u", script} }

// writeBootstrap writes the embedded bootstrap into dir and returns its path.
func writeBootstrap(dir string) (string, error) {
	script := filepath.Join(dir, "bootstrap.py")
	if err := os.WriteFile(script, bootstrapSource, 0o600); err != nil {
		return "", fmt.Errorf("write bootstrap: %w", err)
	}
	return script, nil
}

// pipes are Python's fds 1-4: the child ends go to Python, the agent keeps
// the parent ends.
type pipes struct {
	cmdR, cmdW *os.File // fd 3: commands to Python
	evR, evW   *os.File // fd 4: events from Python
	outR, outW *os.File // stdout
	errR, errW *os.File // stderr
}

func newPipes() (*pipes, error) {
	var p pipes
	var err [4]error
	p.cmdR, p.cmdW, err[0] = os.Pipe()
	p.evR, p.evW, err[1] = os.Pipe()
	p.outR, p.outW, err[2] = os.Pipe()
	p.errR, p.errW, err[3] = os.Pipe()
	if err := errors.Join(err[:]...); err != nil {
		p.closeChildEnds()
		p.closeParentEnds()
		return nil, fmt.Errorf("create pipes: %w", err)
	}
	return &p, nil
}

// childEnds are the files that become Python's fds 3, 4, 1 and 2.
func (p *pipes) childEnds() []*os.File { return []*os.File{p.cmdR, p.evW, p.outW, p.errW} }

func (p *pipes) closeChildEnds() { closeFiles(p.childEnds()) }

func (p *pipes) closeParentEnds() { closeFiles([]*os.File{p.cmdW, p.evR, p.outR, p.errR}) }

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

func (p *python) forward(r *os.File, stream string, sink *logSink, last *atomic.Pointer[string]) {
	defer p.logs.Done()
	defer r.Close()
	forwardLines(r, func(t time.Time, text []byte) {
		sink.line(t, stream, text)
		if last != nil {
			if s := strings.TrimSpace(string(text)); s != "" {
				last.Store(&s)
			}
		}
	})
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
func (p *python) pid() int { return p.proc.pid() }

// load sends the load command. It may be sent once. fd 3 stays open: its
// EOF tells Python that the agent died (see the bootstrap's watch_agent).
func (p *python) load(cmd loadCommand) error {
	err := errors.New("load command already sent")
	p.loadOnce.Do(func() {
		cmd.Cmd = "load"
		var b []byte
		if b, err = json.Marshal(cmd); err != nil {
			return
		}
		_, err = p.cmds.Write(append(b, '\n'))
	})
	return err
}

// exitReason describes how Python exited. Call only after exited is closed.
func (p *python) exitReason() string {
	st := p.status
	switch {
	case st.known && st.ws.Signaled():
		name := unix.SignalName(st.ws.Signal())
		if name == "" {
			name = st.ws.Signal().String()
		}
		if limit, killed := p.group.memoryKilled(); killed && st.ws.Signal() == syscall.SIGKILL {
			return fmt.Sprintf("killed by %s: the app's processes went over its memory limit (%d MB, all of them together)", name, limit>>20)
		}
		return "killed by " + name
	case st.known:
		return fmt.Sprintf("exit status %d", st.ws.ExitStatus())
	}
	reason := "exit status unknown (" + st.why + ")"
	if last := p.lastStderr.Load(); last != nil {
		reason += "; last stderr line: " + *last
	}
	return reason
}

// terminated reports whether Python was ended by SIGTERM or SIGINT, which
// only a stop of the runner sends. Call only after exited is closed.
func (p *python) terminated() bool {
	ws := p.status.ws
	return p.status.known && ws.Signaled() && (ws.Signal() == syscall.SIGTERM || ws.Signal() == syscall.SIGINT)
}

// stop asks Python to finish (SIGTERM: uvicorn completes in-flight requests)
// and kills it if it has not exited after grace. It returns once Python has
// exited.
func (p *python) stop(grace time.Duration) {
	p.proc.terminate()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		p.proc.kill()
		<-p.exited
	}
}

// finish, once Python has exited, ends what the app started in sessions
// of its own, which would outlive it (see RunAs.KillAll) and keep its
// output open, then waits for the last lines of that output (drainLogs).
func (p *python) finish(logf func(string, ...any)) {
	if err := p.user.KillAll(); err != nil {
		logf("%v", err)
	}
	p.drainLogs(logDrainLimit)
}

// drainLogs waits until the last lines Python wrote were forwarded, or until
// limit passed: a subprocess of the app could keep stdout open forever.
func (p *python) drainLogs(limit time.Duration) {
	done := make(chan struct{})
	go func() {
		p.logs.Wait()
		close(done)
	}()
	waitLimit(done, limit)
}

// waitLimit waits until done is closed or limit passed.
func waitLimit(done <-chan struct{}, limit time.Duration) {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}
