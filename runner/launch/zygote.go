package launch

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/gofastapi/gofastapi/runner"
)

// zygoteStopGrace bounds the wait for a zygote to exit after SIGTERM, which
// ends it at once unless it is wedged.
const zygoteStopGrace = 5 * time.Second

// ZygoteConfig says how to start a zygote.
type ZygoteConfig struct {
	// Python is the interpreter; empty means /usr/bin/python3, as for agents.
	Python string
	// Dir is the zygote's private directory, for its socket and its copy of
	// the bootstrap: created by StartZygote (mode 0700), removed by Stop.
	// It must be an absolute path, short enough that Dir/zygote.sock fits a
	// Unix socket address (107 bytes).
	Dir string
}

// Validate reports the first missing or bad field.
func (c ZygoteConfig) Validate() error {
	switch {
	case c.Dir == "" || !filepath.IsAbs(c.Dir):
		return fmt.Errorf("launch: zygote Dir %q must be an absolute path", c.Dir)
	case filepath.Dir(filepath.Clean(c.Dir)) == filepath.Clean(c.Dir):
		return fmt.Errorf("launch: zygote Dir %q must not be a root directory", c.Dir)
	}
	return nil
}

// Zygote is a running zygote: one Python that has imported the framework
// and forks runner processes for agents started with Config.Zygote set to
// its Socket. It never runs user code. Runners it forked do not depend on
// it once forked: they keep serving if it exits.
type Zygote struct {
	cmd    *exec.Cmd
	dir    string
	socket string

	done    chan struct{}
	exitErr error // set before done is closed

	stderr stderrTail

	stopping chan struct{} // closed when Stop begins
	stopOnce sync.Once
}

// StartZygote starts a zygote as cfg says, in its own process group with a
// parent-death signal, and returns once it serves fork requests. ctx bounds
// the wait (the framework's imports take a fresh interpreter about half a
// second of CPU); when it ends first, the zygote is killed and Dir removed.
func StartZygote(ctx context.Context, cfg ZygoteConfig) (*Zygote, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	python := cfg.Python
	if python == "" {
		python = "/usr/bin/python3"
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("launch: create zygote dir: %w", err)
	}
	if err := os.Chmod(cfg.Dir, 0o700); err != nil {
		os.RemoveAll(cfg.Dir)
		return nil, fmt.Errorf("launch: create zygote dir: %w", err)
	}
	cmd, socket, err := runner.ZygoteCommand(python, cfg.Dir)
	if err != nil {
		os.RemoveAll(cfg.Dir)
		return nil, fmt.Errorf("launch: %w", err)
	}
	cmd.SysProcAttr = agentProcAttr()
	outR, outW, err1 := os.Pipe()
	errR, errW, err2 := os.Pipe()
	if err := errors.Join(err1, err2); err != nil {
		closeFiles(outR, outW, errR, errW)
		os.RemoveAll(cfg.Dir)
		return nil, fmt.Errorf("launch: create pipes: %w", err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	if err := cmd.Start(); err != nil {
		closeFiles(outR, outW, errR, errW)
		os.RemoveAll(cfg.Dir)
		return nil, fmt.Errorf("launch: start zygote: %w", err)
	}
	closeFiles(outW, errW)

	z := &Zygote{
		cmd:      cmd,
		dir:      cfg.Dir,
		socket:   socket,
		done:     make(chan struct{}),
		stopping: make(chan struct{}),
	}
	handshake := make(chan error, 1)
	var outputs sync.WaitGroup
	outputs.Add(2)
	go func() {
		defer outputs.Done()
		z.readStdout(outR, handshake)
	}()
	go func() {
		defer outputs.Done()
		z.stderr.read(errR)
	}()
	go z.wait(&outputs)

	select {
	case err := <-handshake:
		if err != nil {
			z.Stop()
			if exitErr := z.ExitErr(); exitErr != nil {
				return nil, fmt.Errorf("launch: zygote exited before its handshake: %w", exitErr)
			}
			return nil, fmt.Errorf("launch: zygote: %w", err)
		}
	case <-z.done:
		z.Stop()
		return nil, fmt.Errorf("launch: zygote exited before its handshake: %w", z.ExitErr())
	case <-ctx.Done():
		z.Stop()
		return nil, fmt.Errorf("launch: waiting for the zygote's handshake: %w", ctx.Err())
	}
	return z, nil
}

func closeFiles(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

// readStdout reads the zygote's handshake, then drops anything else.
func (z *Zygote) readStdout(f *os.File, handshake chan<- error) {
	defer f.Close()
	br := bufio.NewReaderSize(f, 4096)
	line, err := readLine(br)
	var hs runner.ZygoteHandshake
	switch {
	case err != nil:
		handshake <- fmt.Errorf("read handshake: %w", err)
	case json.Unmarshal(line, &hs) != nil || hs.Event != "listening" || hs.Pid <= 0:
		handshake <- fmt.Errorf("malformed handshake %.200q", line)
	default:
		handshake <- nil
	}
	drain(br)
}

// wait reaps the zygote once its output has been read to the end.
func (z *Zygote) wait(outputs *sync.WaitGroup) {
	err := z.cmd.Wait()
	outputs.Wait()
	select {
	case <-z.stopping:
		// Stopped: SIGTERM or SIGKILL is the expected end.
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				err = nil
			}
		}
	default:
	}
	if err == nil && !z.stopped() {
		err = errors.New("exited")
	}
	if err != nil {
		z.exitErr = fmt.Errorf("zygote: %w", z.stderr.explain(err))
	}
	close(z.done)
}

func (z *Zygote) stopped() bool {
	select {
	case <-z.stopping:
		return true
	default:
		return false
	}
}

// terminate signals the zygote's process group, which holds only the
// zygote (and a child between fork and setpgid): runners lead their own.
func (z *Zygote) terminate() {
	pgid := z.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(zygoteStopGrace)
	defer t.Stop()
	select {
	case <-z.done:
	case <-t.C:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-z.done
	}
}

// Socket is the path agents connect to (Config.Zygote).
func (z *Zygote) Socket() string { return z.socket }

// Pid is the zygote's process id, which is also its process group id.
func (z *Zygote) Pid() int { return z.cmd.Process.Pid }

// Done is closed when the zygote has exited and its output was read.
func (z *Zygote) Done() <-chan struct{} { return z.done }

// ExitErr says why the zygote exited, including the last line it wrote to
// stderr; nil if it has not exited or was stopped by Stop.
func (z *Zygote) ExitErr() error {
	select {
	case <-z.done:
		return z.exitErr
	default:
		return nil
	}
}

// Stop ends the zygote (SIGTERM, SIGKILL if it lingers), waits until it
// exited and removes its Dir. Runners it forked keep running. Calling it
// again, even concurrently, waits for the first call and does nothing more.
func (z *Zygote) Stop() {
	z.stopOnce.Do(func() {
		close(z.stopping)
		select {
		case <-z.done:
			// Exited and reaped already: its group id may name another
			// group by now, so signal nothing.
		default:
			z.terminate()
		}
		_ = os.RemoveAll(z.dir)
	})
}
