package runner

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestForwardLines(t *testing.T) {
	long := strings.Repeat("a", MaxLogLine+100)
	// "é" is two bytes; placed so the cut at MaxLogLine would split it.
	split := strings.Repeat("b", MaxLogLine-1) + "é" + "tail"
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{name: "lines", input: "one\ntwo\n", want: []string{"one", "two"}},
		{name: "unterminated last line", input: "one\ntwo", want: []string{"one", "two"}},
		{name: "empty lines kept", input: "\n\nx\n", want: []string{"", "", "x"}},
		{name: "crlf", input: "dos\r\n", want: []string{"dos"}},
		{name: "exactly the limit", input: long[:MaxLogLine] + "\nnext\n", want: []string{long[:MaxLogLine], "next"}},
		{name: "one over the limit", input: long[:MaxLogLine+1] + "\nnext\n", want: []string{long[:MaxLogLine], "next"}},
		{name: "long line truncated, rest dropped", input: long + "\nnext\n", want: []string{long[:MaxLogLine], "next"}},
		{name: "truncation keeps utf-8 whole", input: split + "\n", want: []string{strings.Repeat("b", MaxLogLine-1)}},
		{name: "long unterminated", input: long, want: []string{long[:MaxLogLine]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			forwardLines(strings.NewReader(tt.input), func(_ time.Time, text []byte) {
				got = append(got, string(text))
			})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLogSinkHoldsLinesUntilHandshake(t *testing.T) {
	var out bytes.Buffer
	s := newLogSink(&out)
	t0 := time.Unix(1, 5)
	s.line(t0, StreamStderr, []byte("early"))
	if out.Len() != 0 {
		t.Fatalf("wrote %q before the handshake", out.String())
	}
	if err := s.openWith([]byte("{}\n")); err != nil {
		t.Fatal(err)
	}
	s.line(t0, StreamStdout, []byte("late line"))
	want := "{}\n1000000005 stderr early\n1000000005 stdout late line\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
}

func TestLogSinkFlushHeld(t *testing.T) {
	var out, errOut bytes.Buffer
	s := newLogSink(&out)
	s.line(time.Unix(0, 7), StreamStderr, []byte("Traceback"))
	s.flushHeld(&errOut)
	if diff := cmp.Diff("7 stderr Traceback\n", errOut.String()); diff != "" {
		t.Errorf("flushed (-want +got):\n%s", diff)
	}
	if out.Len() != 0 {
		t.Errorf("stdout = %q, want nothing", out.String())
	}
}

func TestParseLogLine(t *testing.T) {
	type parsed struct {
		Time   time.Time
		Stream string
		Text   string
		OK     bool
	}
	tests := []struct {
		name string
		line string
		want parsed
	}{
		{name: "stdout", line: "1700000000000000001 stdout hello world", want: parsed{time.Unix(0, 1700000000000000001), "stdout", "hello world", true}},
		{name: "empty text", line: "5 stderr ", want: parsed{time.Unix(0, 5), "stderr", "", true}},
		{name: "text with spaces kept", line: "5 stdout  two  spaces ", want: parsed{time.Unix(0, 5), "stdout", " two  spaces ", true}},
		{name: "unknown stream", line: "5 stdin x", want: parsed{}},
		{name: "no time", line: "stdout x", want: parsed{}},
		{name: "no text separator", line: "5 stdout", want: parsed{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, stream, text, err := ParseLogLine([]byte(tt.line))
			got := parsed{ts, stream, string(text), err == nil}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseLogLine(%q) (-want +got):\n%s", tt.line, diff)
			}
		})
	}
	// Round trip with the writer's format.
	line := formatLogLine(nil, time.Unix(0, 42), StreamStdout, []byte("a b"))
	ts, stream, text, err := ParseLogLine(bytes.TrimSuffix(line, []byte("\n")))
	if err != nil || !ts.Equal(time.Unix(0, 42)) || stream != StreamStdout || string(text) != "a b" {
		t.Errorf("round trip of %q = %v %q %q %v", line, ts, stream, text, err)
	}
}
