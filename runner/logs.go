package runner

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// MaxLogLine is the longest log line text the agent forwards, in bytes;
// longer lines are cut to this length (at a UTF-8 boundary) and the rest of
// the line is dropped.
const MaxLogLine = 8 << 10

// maxHeldLines bounds the lines kept before the handshake. Python writes
// little before it reports its port, but a broken interpreter could write
// without end; holding everything would let it exhaust the agent's memory.
const maxHeldLines = 1000

// logSink writes app log lines to the agent's stdout as
// "<unix-nanos> <stream> <text>\n", one Write per line so lines never
// interleave. Until open is called it holds lines back (bounded), because the
// handshake must be the first line on stdout.
type logSink struct {
	mu   sync.Mutex // serializes writes to w and guards open and held
	w    io.Writer
	open bool
	held [][]byte
}

func newLogSink(w io.Writer) *logSink { return &logSink{w: w} }

// line forwards one log line read at time t.
func (s *logSink) line(t time.Time, stream string, text []byte) {
	b := formatLogLine(make([]byte, 0, len(text)+40), t, stream, text)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.open {
		if len(s.held) < maxHeldLines {
			s.held = append(s.held, b)
		}
		return
	}
	// A failed write means nobody reads the logs any more; keep draining
	// Python's pipes anyway so the app never blocks on a full pipe.
	_, _ = s.w.Write(b)
}

// openWith writes first (the handshake), then the held lines, and from then on
// forwards lines as they come.
func (s *logSink) openWith(first []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(first); err != nil {
		return err
	}
	for _, b := range s.held {
		if _, err := s.w.Write(b); err != nil {
			return err
		}
	}
	s.held, s.open = nil, true
	return nil
}

// flushHeld writes the lines held before a handshake that never happened to
// w, so a failed start still shows what Python printed.
func (s *logSink) flushHeld(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.held {
		_, _ = w.Write(b)
	}
	s.held = nil
}

// formatLogLine appends "<unix-nanos> <stream> <text>\n" to b.
func formatLogLine(b []byte, t time.Time, stream string, text []byte) []byte {
	b = strconv.AppendInt(b, t.UnixNano(), 10)
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, ' ')
	b = append(b, text...)
	return append(b, '\n')
}

// forwardLines reads r line by line until EOF or a read error and passes each
// line, without its line ending and cut to MaxLogLine bytes, to emit together
// with the time it was read.
func forwardLines(r io.Reader, emit func(t time.Time, text []byte)) {
	br := bufio.NewReaderSize(r, MaxLogLine+2) // text + "\r\n" fits whole
	for {
		b, err := br.ReadSlice('\n')
		t := time.Now()
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			emit(t, truncateUTF8(b, MaxLogLine))
			if !discardLine(br) {
				return
			}
		case len(b) > 0:
			emit(t, truncateUTF8(trimNewline(b), MaxLogLine))
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// discardLine drops the rest of an over-long line. It reports whether the
// reader may still have data.
func discardLine(br *bufio.Reader) bool {
	for {
		_, err := br.ReadSlice('\n')
		if err == nil {
			return true
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return false
		}
	}
}

func trimNewline(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// truncateUTF8 cuts b to at most n bytes without splitting a UTF-8 sequence.
func truncateUTF8(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	b = b[:n]
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}
