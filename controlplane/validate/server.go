package validate

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
)

// worker is one long-lived validator process: starting Python costs tens of
// milliseconds, answering one more request costs about one.
type worker struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	stderr *strings.Builder
}

func startWorker(python string) (*worker, error) {
	// -I isolates from the environment and user site; -S skips site imports:
	// the script needs only the standard library.
	cmd := exec.Command(python, "-I", "-S", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	w := &worker{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 64<<10), stderr: &strings.Builder{}}
	cmd.Stderr = w.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start validator %s: %w", python, err)
	}
	return w, nil
}

// do sends one request line and reads one answer line. The caller kills the
// worker when ctx ends first.
func (w *worker) do(ctx context.Context, req []byte) ([]byte, error) {
	stop := context.AfterFunc(ctx, w.kill)
	defer stop()
	if _, err := w.in.Write(append(req, '\n')); err != nil {
		return nil, w.failed(ctx, err)
	}
	line, err := w.out.ReadBytes('\n')
	if err != nil {
		return nil, w.failed(ctx, err)
	}
	return line, nil
}

func (w *worker) failed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("validator exited: %w: %s", err, lastLine(w.stderr.String()))
}

func (w *worker) kill() {
	w.cmd.Process.Kill()
}

func (w *worker) close() {
	w.in.Close()
	w.cmd.Wait()
}
