package local

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/gofastapi/gofastapi/runner"
)

// tmpfsParent is where working directories go when it is a tmpfs.
const tmpfsParent = "/dev/shm"

// tmpfsPrefix starts the name of each Backend's directory in tmpfsParent;
// the creating process's pid follows.
const tmpfsPrefix = "gofastapi-"

// tmpfsDir makes a private directory on the tmpfs at tmpfsParent, if there
// is one, named after this process. It first removes what Backends of
// processes that no longer run left there: a process killed before Close
// would otherwise leave its directory, which costs memory, until reboot.
func tmpfsDir() (string, bool) {
	if !isTmpfs(tmpfsParent) {
		return "", false
	}
	removeStale(tmpfsParent)
	dir, err := os.MkdirTemp(tmpfsParent, fmt.Sprintf("%s%d-", tmpfsPrefix, os.Getpid())) // mode 0700
	if err != nil {
		return "", false
	}
	return dir, true
}

// removeStale removes this user's directories in parent whose creating
// process is gone. A directory whose pid was reused stays until that
// process is gone too.
func removeStale(parent string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), tmpfsPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if st, ok := info.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Getuid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			dir := filepath.Join(parent, e.Name())
			// Runners killed with their process leave their directories'
			// own file systems (the agent's --app-disk) mounted.
			// And what their apps started in sessions of their own runs
			// on as their users, who own their directories (see
			// runner.RunAs.KillAll).
			if runners, err := os.ReadDir(dir); err == nil {
				for _, r := range runners {
					rdir := filepath.Join(dir, r.Name())
					if info, err := os.Lstat(rdir); err == nil && info.IsDir() {
						if st, ok := info.Sys().(*syscall.Stat_t); ok {
							_ = (&runner.RunAs{UID: st.Uid, GID: st.Gid}).KillAll()
						}
					}
					runner.UnmountWorkdir(rdir)
				}
			}
			_ = os.RemoveAll(dir)
		}
	}
	runner.RemoveStaleAppGroups()
}
