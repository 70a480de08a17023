package runner

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// maxSocketPath is the longest Unix socket path Linux accepts (sun_path
// without its terminating NUL).
const maxSocketPath = 107

// ZygoteHandshake is the one line a zygote writes to stdout, as JSON, once
// it serves fork requests.
type ZygoteHandshake struct {
	// Event is "listening".
	Event string `json:"event"`
	// Pid is the zygote's process id.
	Pid int `json:"pid"`
}

// forkRequest is the message an agent sends the zygote, with Python's
// fds 3, 4, 1 and 2 attached (see serve_zygote in bootstrap.py).
type forkRequest struct {
	Workdir string            `json:"workdir"`
	Env     map[string]string `json:"env"`
	// UID and GID, when set, are the user the child becomes before
	// anything else (see RunAs).
	UID *uint32 `json:"uid,omitempty"`
	GID *uint32 `json:"gid,omitempty"`
}

// forkReply is each message the zygote sends back: first the child's Pid or
// an Error, then, once the child exited, its raw wait Status.
type forkReply struct {
	Pid    int    `json:"pid,omitempty"`
	Error  string `json:"error,omitempty"`
	Status *int   `json:"status,omitempty"`
}

// ZygoteCommand returns the command that runs a zygote in dir: a Python
// that pre-imports the framework once and then only forks runner processes
// for agents started with --zygote socket. It never runs user code.
//
// dir must be an absolute path, exist, and be private to this user: its
// permissions are what keeps other users off the socket (the zygote also
// serves only its own user). ZygoteCommand writes the bootstrap into dir and
// removes a socket an earlier zygote left there. The command has Python's
// scrubbed environment; the caller sets its process attributes and output.
// Once it serves requests the zygote writes one ZygoteHandshake line to
// stdout; after that it writes only failures, to stderr. SIGTERM ends it;
// runners it forked live on.
func ZygoteCommand(python, dir string) (cmd *exec.Cmd, socket string, err error) {
	if !filepath.IsAbs(dir) {
		return nil, "", fmt.Errorf("zygote dir %q must be an absolute path", dir)
	}
	socket = filepath.Join(dir, "zygote.sock")
	if len(socket) > maxSocketPath {
		return nil, "", fmt.Errorf("zygote socket path %q is longer than %d bytes", socket, maxSocketPath)
	}
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, "", fmt.Errorf("remove stale zygote socket: %w", err)
	}
	script, err := writeBootstrap(dir)
	if err != nil {
		return nil, "", err
	}
	cmd = exec.Command(python, append(pythonArgs(script), "--zygote", socket)...)
	cmd.Dir = dir
	cmd.Env = pythonEnv(dir)
	return cmd, socket, nil
}

// envMap turns "KEY=value" entries into a map.
func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}
