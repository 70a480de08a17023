package runner

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// execProcess is a Python the agent started itself (exec mode).
type execProcess struct{ cmd *exec.Cmd }

// execPython starts the bootstrap with interpreter path in workdir, with p's
// child ends as its fds 1-4.
func execPython(path, workdir string, env []string, runAs *RunAs, p *pipes) (process, error) {
	script, err := writeBootstrap(workdir)
	if err != nil {
		return nil, err
	}
	if err := runAs.give(script); err != nil {
		return nil, err
	}
	cmd := exec.Command(path, pythonArgs(script)...)
	cmd.Dir = workdir
	cmd.Env = env
	// Same process group as the agent (no Setpgid): signalling the group
	// reaches both. Pdeathsig ends Python if the agent dies without cleanup.
	cmd.SysProcAttr = pythonProcAttr()
	if runAs != nil {
		// Go sets the parent-death signal after the change of user, which
		// would otherwise clear it.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: runAs.UID, Gid: runAs.GID, Groups: []uint32{}}
	}
	cmd.Stdout, cmd.Stderr = p.outW, p.errW
	cmd.ExtraFiles = []*os.File{p.cmdR, p.evW} // fds 3 and 4
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	return &execProcess{cmd: cmd}, nil
}

func (e *execProcess) pid() int { return e.cmd.Process.Pid }

// terminate and kill signal Python only: what the app started shares the
// agent's process group, which the launcher signals when it stops the
// runner. os.Process knows when its child was reaped and then sends nothing.
func (e *execProcess) terminate() { _ = e.cmd.Process.Signal(syscall.SIGTERM) }

func (e *execProcess) kill() { _ = e.cmd.Process.Kill() }

func (e *execProcess) wait() exitStatus {
	err := e.cmd.Wait()
	if ps := e.cmd.ProcessState; ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
			return exitStatus{ws: ws, known: true}
		}
	}
	if err == nil {
		err = fmt.Errorf("no wait status")
	}
	return exitStatus{why: err.Error()}
}
