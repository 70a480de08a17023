package runner

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
)

// KillAll ends every process of the runner's user: what the app started
// in a session of its own (a daemon), which the process groups the agent
// and its launcher signal do not hold, would otherwise run on after its
// runner, costing what an app nobody uses must not, and be there for the
// next runner that gets this user. It needs root; nil r, or a user that
// is root or this process's, does nothing.
//
// It sends SIGKILL to -1 from a thread that has become r's user, and from
// that thread alone: kill(-1) reaches exactly the processes that user may
// signal, its own, and the kernel walks them under the lock that fork
// takes, so none is made meanwhile. That thread is locked and never
// unlocked, so the Go runtime ends it with its goroutine instead of
// running other code as that user (and makes no thread from it); it is
// never the main thread, whose user is the whole process's to other
// processes' eyes and which the runtime cannot end; and it checks that its
// user did change before it sends anything.
func (r *RunAs) KillAll() error {
	if r == nil || r.UID == 0 || int(r.UID) == os.Getuid() {
		return nil
	}
	done := make(chan error, 1)
	go r.killFromThreadOfItsOwn(done)
	return <-done
}

func (r *RunAs) killFromThreadOfItsOwn(done chan<- error) {
	runtime.LockOSThread()
	if syscall.Gettid() == os.Getpid() {
		// The main thread: hold it while another goroutine, which then
		// cannot run on it, does the work; then give it back.
		inner := make(chan error, 1)
		go r.killFromThreadOfItsOwn(inner)
		err := <-inner
		runtime.UnlockOSThread()
		done <- err
		return
	}
	// Not unlocked: the thread ends with this goroutine.
	done <- r.killAllFromThisThread()
}

func (r *RunAs) killAllFromThisThread() error {
	// syscall.Setresuid would change every thread of the process; the raw
	// system calls change this one's.
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESGID, uintptr(r.GID), uintptr(r.GID), uintptr(r.GID)); e != 0 {
		return fmt.Errorf("kill the processes of user %d: become its group: %w", r.UID, e)
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, uintptr(r.UID), uintptr(r.UID), uintptr(r.UID)); e != 0 {
		return fmt.Errorf("kill the processes of user %d: become it: %w", r.UID, e)
	}
	uid, _, _ := syscall.RawSyscall(syscall.SYS_GETUID, 0, 0, 0)
	euid, _, _ := syscall.RawSyscall(syscall.SYS_GETEUID, 0, 0, 0)
	if uid != uintptr(r.UID) || euid != uintptr(r.UID) {
		return fmt.Errorf("kill the processes of user %d: this thread is user %d (effective %d)", r.UID, uid, euid)
	}
	// Twice at most: the first sweep has them all (see KillAll); ESRCH
	// says there was none left.
	for range 2 {
		pid := -1
		_, _, e := syscall.RawSyscall(syscall.SYS_KILL, uintptr(pid), uintptr(syscall.SIGKILL), 0)
		if errors.Is(e, syscall.ESRCH) {
			return nil
		}
		if e != 0 {
			return fmt.Errorf("kill the processes of user %d: %w", r.UID, e)
		}
	}
	return nil
}
