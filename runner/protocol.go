package runner

import (
	"bytes"
	"errors"
	"strconv"
	"time"
)

// Handshake is the first line the agent writes to stdout, as JSON, once
// Python has pre-imported the framework and bound the app's listener.
// Every later stdout line is a log line (see ParseLogLine).
type Handshake struct {
	// Control is host:port of the agent's RunnerService listener.
	Control string `json:"control"`
	// App is where the app will serve once specialized (see appaddr).
	App string `json:"app"`
	// Pid is the Python process's id.
	Pid int `json:"pid"`
}

// Secrets is the one JSON line the agent reads from stdin at start. Secrets
// never travel in argv or the environment, where other processes of the same
// user could read them.
type Secrets struct {
	// RedisURL is redis://user:pass@host:port/db, read-only in production.
	RedisURL string `json:"redis_url"`
	// ControlToken, if set, is required as "Authorization: Bearer TOKEN"
	// on every RunnerService call: on one machine every process, apps
	// included, can reach the control listener on loopback, and an app must
	// not specialize a runner the pool has yet to hand out. A pod has no
	// secrets of its own (its Secret is every runner's): the pool gives
	// each pod its token's SHA-256 in --control-token-sha256 instead, and
	// NetworkPolicy keeps apps from other runners' pods as well.
	ControlToken string `json:"control_token,omitempty"`
}

// Log streams: which of Python's outputs a log line came from.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// ErrBadLogLine is returned by ParseLogLine for a line that is not
// "<unix-nanos> <stream> <text>".
var ErrBadLogLine = errors.New("runner: malformed log line")

// ParseLogLine parses one stdout line after the handshake, without its
// trailing newline: "<unix-nanos> <stream> <text>". text aliases line.
func ParseLogLine(line []byte) (t time.Time, stream string, text []byte, err error) {
	ns, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return time.Time{}, "", nil, ErrBadLogLine
	}
	n, err := strconv.ParseInt(string(ns), 10, 64)
	if err != nil {
		return time.Time{}, "", nil, ErrBadLogLine
	}
	s, text, ok := bytes.Cut(rest, []byte{' '})
	switch {
	case !ok:
		return time.Time{}, "", nil, ErrBadLogLine
	case string(s) == StreamStdout:
		stream = StreamStdout
	case string(s) == StreamStderr:
		stream = StreamStderr
	default:
		return time.Time{}, "", nil, ErrBadLogLine
	}
	return time.Unix(0, n), stream, text, nil
}
