package launch

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
	"github.com/gofastapi/gofastapi/runner"
	"github.com/gofastapi/gofastapi/runner/internal/pidfd"
)

// Runner is one started agent.
type Runner struct {
	cmd       *exec.Cmd
	workDir   string
	runAs     *runner.RunAs // the app's user, if it has one of its own
	forked    bool          // Python was forked by a zygote, outside the agent's process group
	hs        runner.Handshake
	app       *pidfd.Process // Python; nil if it could not be opened
	log       atomic.Pointer[logFunc]
	transport *http.Transport
	client    gofastapiv1connect.RunnerServiceClient

	done    chan struct{}
	exitErr error // set before done is closed

	stderr stderrTail

	stopOnce sync.Once
}

type logFunc func(t time.Time, stream, text string)

// Start starts an agent as cfg says and returns once its handshake arrived:
// Python has pre-imported the framework and the runner can be specialized.
// ctx bounds the wait; when it ends first, the agent is killed and WorkDir
// removed.
func Start(ctx context.Context, cfg Config) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// The control token keeps every other process on the machine, apps in
	// other runners included, from calling this runner's agent.
	token := rand.Text()
	secrets, err := json.Marshal(runner.Secrets{RedisURL: cfg.RedisURL, ControlToken: token})
	if err != nil {
		return nil, fmt.Errorf("launch: encode secrets: %w", err)
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o700); err != nil {
		return nil, fmt.Errorf("launch: create workdir: %w", err)
	}
	cmd := exec.Command(cfg.Command[0], cfg.args()...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, cfg.Env...)
	cmd.SysProcAttr = agentProcAttr()

	p, err := newPipes()
	if err != nil {
		os.RemoveAll(cfg.WorkDir)
		return nil, fmt.Errorf("launch: %w", err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = p.stdinR, p.stdoutW, p.stderrW
	if err := cmd.Start(); err != nil {
		p.closeAll()
		os.RemoveAll(cfg.WorkDir)
		return nil, fmt.Errorf("launch: start agent: %w", err)
	}
	p.closeChildEnds()
	// The line fits in the pipe buffer, so this does not wait for the agent.
	// If it fails the agent has died, which Done reports.
	_, _ = p.stdinW.Write(append(secrets, '\n'))
	p.stdinW.Close()

	r := &Runner{
		cmd:       cmd,
		workDir:   cfg.WorkDir,
		runAs:     cfg.RunAs,
		forked:    cfg.Zygote != "",
		transport: &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Hour},
		done:      make(chan struct{}),
	}
	if cfg.Log != nil {
		r.SetLog(cfg.Log)
	}
	handshake := make(chan handshakeResult, 1)
	var outputs sync.WaitGroup
	outputs.Add(2)
	go func() {
		defer outputs.Done()
		r.readStdout(p.stdoutR, handshake)
	}()
	go func() {
		defer outputs.Done()
		r.stderr.read(p.stderrR)
	}()
	go r.wait(&outputs)

	select {
	case res := <-handshake:
		if res.err != nil {
			r.Stop(0)
			if exitErr := r.ExitErr(); exitErr != nil {
				return nil, fmt.Errorf("launch: agent exited before its handshake: %w", exitErr)
			}
			return nil, fmt.Errorf("launch: %w", res.err)
		}
		r.hs = res.hs
		// Python reported its pid just now and lives until the agent stops
		// it: the pid cannot have been reused yet. Failure (no pidfds) only
		// loses Stop's last resort.
		r.app, _ = pidfd.Open(r.hs.Pid)
	case <-r.done:
		r.Stop(0)
		return nil, fmt.Errorf("launch: agent exited before its handshake: %w", r.ExitErr())
	case <-ctx.Done():
		r.Stop(0)
		return nil, fmt.Errorf("launch: waiting for the agent's handshake: %w", ctx.Err())
	}
	r.client = gofastapiv1connect.NewRunnerServiceClient(
		&http.Client{Transport: r.transport}, "http://"+r.hs.Control, connect.WithInterceptors(sendToken(token)))
	r.warm(ctx)
	return r, nil
}

// sendToken sends the runner's control token with every call.
func sendToken(token string) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+token)
			return next(ctx, req)
		}
	}
}

// wait reaps the agent once its output has been read to the end.
func (r *Runner) wait(outputs *sync.WaitGroup) {
	err := r.cmd.Wait()
	outputs.Wait()
	if err != nil {
		r.exitErr = fmt.Errorf("runner agent: %w", r.stderr.explain(err))
	}
	close(r.done)
}

// endApp makes sure Python has exited. The agent stops Python before it
// exits itself; but an agent killed first leaves a forked Python behind
// (Python would notice the agent's death, but only after Stop returned).
// While Python lives its pid is its process group's id (it called setpgid),
// so the group kill reaches only what it started.
func (r *Runner) endApp() {
	if r.app == nil {
		return
	}
	if !r.app.Exited() {
		if r.forked {
			_ = syscall.Kill(-r.app.Pid(), syscall.SIGKILL)
		}
		_ = r.app.Signal(syscall.SIGKILL)
	}
	r.app.Wait()
	r.app.Close()
}

// AppAddr is where the app serves once specialized: "unix:" and the path
// of its socket (see appaddr).
func (r *Runner) AppAddr() string { return r.hs.App }

// AppPid is the process id of the runner's Python process.
func (r *Runner) AppPid() int { return r.hs.Pid }

// Pid is the agent's process id, which is also its process group id.
func (r *Runner) Pid() int { return r.cmd.Process.Pid }

// Done is closed when the agent process has exited and its output was read.
func (r *Runner) Done() <-chan struct{} { return r.done }

// ExitErr says why the agent exited, including the last line it wrote to
// stderr; nil if it has not exited or exited with status 0 (after Stop).
func (r *Runner) ExitErr() error {
	select {
	case <-r.done:
		return r.exitErr
	default:
		return nil
	}
}

// SetLog atomically replaces the function app log lines go to; nil drops
// them. Lines already being delivered may still reach the previous one.
func (r *Runner) SetLog(f func(t time.Time, stream, text string)) {
	if f == nil {
		r.log.Store(nil)
		return
	}
	lf := logFunc(f)
	r.log.Store(&lf)
}

// Specialize loads one app version into the runner; see RunnerService. Errors
// keep the agent's Connect codes (connect.CodeOf): FailedPrecondition for an
// app that failed to start or a second call, NotFound for a missing bundle,
// DataLoss for a bundle that does not match its hash, DeadlineExceeded for an
// app that did not answer within the ready timeout.
func (r *Runner) Specialize(ctx context.Context, req *v1.SpecializeRequest) (*v1.SpecializeResponse, error) {
	res, err := r.client.Specialize(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

// Stop sends SIGTERM to the runner's process group, SIGKILL after grace if
// the agent is still running, waits until it and its Python exited (a forked
// Python is stopped by the agent, or killed here if the agent was killed)
// and removes WorkDir.
// Calling it again, even concurrently, waits for the first call and does
// nothing more.
func (r *Runner) Stop(grace time.Duration) {
	r.stopOnce.Do(func() {
		pgid := r.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		t := time.NewTimer(grace)
		select {
		case <-r.done:
		case <-t.C:
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-r.done
		}
		t.Stop()
		// Whatever the app started and left behind (a subprocess that
		// ignored SIGTERM) is still in the group: end it too.
		// ESRCH (the group is empty) is the usual answer.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		r.endApp()
		// And what it started in a session of its own, which the agent
		// ends when it can (see RunAs.KillAll): an agent that was killed
		// could not.
		_ = r.runAs.KillAll()
		if r.runAs != nil {
			runner.RemoveAppGroup(pgid)
		}
		r.transport.CloseIdleConnections()
		// An agent killed before it unmounted its directory's own file
		// system (see the agent's --app-disk) leaves it mounted.
		runner.UnmountWorkdir(r.workDir)
		_ = os.RemoveAll(r.workDir)
	})
}
