//go:build unix && !linux

package runner

import (
	"context"
	"errors"
)

// forkPython fails outside Linux: a process that is not the agent's child
// can be signalled safely only through a pidfd.
func forkPython(ctx context.Context, socket, workdir string, env []string, runAs *RunAs, p *pipes) (process, error) {
	return nil, errors.New("--zygote needs Linux")
}
