package launch

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/gofastapi/gofastapi/runner"
)

// maxStdoutLine bounds one stdout line: the agent cuts log text to
// runner.MaxLogLine, plus the timestamp and stream name.
const maxStdoutLine = runner.MaxLogLine + 64

type handshakeResult struct {
	hs  runner.Handshake
	err error
}

// pipes are the agent's stdin, stdout and stderr.
type pipes struct {
	stdinR, stdinW   *os.File
	stdoutR, stdoutW *os.File
	stderrR, stderrW *os.File
}

func newPipes() (*pipes, error) {
	var p pipes
	var err1, err2, err3 error
	p.stdinR, p.stdinW, err1 = os.Pipe()
	p.stdoutR, p.stdoutW, err2 = os.Pipe()
	p.stderrR, p.stderrW, err3 = os.Pipe()
	if err := errors.Join(err1, err2, err3); err != nil {
		p.closeAll()
		return nil, fmt.Errorf("create pipes: %w", err)
	}
	return &p, nil
}

// closeChildEnds closes the ends the agent now holds, so EOF on stdout and
// stderr means the agent is gone.
func (p *pipes) closeChildEnds() {
	for _, f := range []*os.File{p.stdinR, p.stdoutW, p.stderrW} {
		f.Close()
	}
}

func (p *pipes) closeAll() {
	for _, f := range []*os.File{p.stdinR, p.stdinW, p.stdoutR, p.stdoutW, p.stderrR, p.stderrW} {
		if f != nil {
			f.Close()
		}
	}
}

// readStdout reads the handshake, reports it on handshake, then delivers log
// lines until EOF.
func (r *Runner) readStdout(f *os.File, handshake chan<- handshakeResult) {
	defer f.Close()
	br := bufio.NewReaderSize(f, maxStdoutLine)
	line, err := readLine(br)
	if err != nil {
		handshake <- handshakeResult{err: fmt.Errorf("read handshake: %w", err)}
		drain(br)
		return
	}
	var hs runner.Handshake
	if err := json.Unmarshal(line, &hs); err != nil || hs.Control == "" || hs.App == "" {
		handshake <- handshakeResult{err: fmt.Errorf("malformed handshake %.200q", line)}
		drain(br)
		return
	}
	handshake <- handshakeResult{hs: hs}
	for {
		line, err := readLine(br)
		if len(line) > 0 {
			r.deliver(line)
		}
		if err != nil {
			return
		}
	}
}

// deliver passes one log line to the current Log function.
func (r *Runner) deliver(line []byte) {
	f := r.log.Load()
	if f == nil {
		return
	}
	t, stream, text, err := runner.ParseLogLine(line)
	if err != nil {
		// Not from the agent's log format: pass it on rather than lose it.
		t, stream, text = time.Now(), runner.StreamStderr, line
	}
	(*f)(t, stream, string(text))
}

// stderrTail keeps the last non-empty line a process wrote to stderr, to
// explain its exit.
type stderrTail struct {
	mu   sync.Mutex // guards last, written by read
	last string
}

// read consumes f to its end, remembering the last non-empty line.
func (t *stderrTail) read(f *os.File) {
	defer f.Close()
	br := bufio.NewReaderSize(f, maxStdoutLine)
	for {
		line, err := readLine(br)
		if s := string(bytes.TrimSpace(line)); s != "" {
			t.mu.Lock()
			t.last = s
			t.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// explain appends the last stderr line, if any, to err.
func (t *stderrTail) explain(err error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last != "" {
		return fmt.Errorf("%w: %s", err, t.last)
	}
	return err
}

// readLine returns the next line without its newline, cut to the reader's
// buffer size. At EOF it returns the unterminated rest, if any, with io.EOF.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		line = bytes.Clone(line)
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = br.ReadSlice('\n')
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return line, err
		}
		return line, nil
	}
	if err != nil && len(line) == 0 {
		return nil, err
	}
	return bytes.TrimSuffix(line, []byte("\n")), err
}

// drain reads and drops the rest, so the agent never blocks on a full pipe.
func drain(br *bufio.Reader) { _, _ = io.Copy(io.Discard, br) }
