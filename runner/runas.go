package runner

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// RunAs is the unprivileged user and group a runner's Python runs as when
// the platform runs as root. The agent stays root (it holds the runner's
// Redis credentials and controls Python); Python, which runs the app's
// code, gets a uid of its own, so it can open nothing of the platform's
// (data directory, key files, sockets) and cannot read another runner's
// files or /proc entries (environ, mem, fds), which the kernel allows only
// to the same uid.
type RunAs struct{ UID, GID uint32 }

// String is the --run-as form, UID:GID.
func (r RunAs) String() string { return fmt.Sprintf("%d:%d", r.UID, r.GID) }

// ParseRunAs parses UID:GID; both must be positive (never root).
func ParseRunAs(s string) (RunAs, error) {
	u, g, ok := strings.Cut(s, ":")
	uid, err1 := strconv.ParseUint(u, 10, 32)
	gid, err2 := strconv.ParseUint(g, 10, 32)
	if !ok || err1 != nil || err2 != nil || uid == 0 || gid == 0 {
		return RunAs{}, fmt.Errorf("--run-as %q: want UID:GID, both positive", s)
	}
	return RunAs{UID: uint32(uid), GID: uint32(gid)}, nil
}

// giveOne makes path (itself, not what is under it) owned by r; nil r does
// nothing.
func (r *RunAs) giveOne(path string) error {
	if r == nil {
		return nil
	}
	if err := os.Lchown(path, int(r.UID), int(r.GID)); err != nil {
		return fmt.Errorf("give %s to the runner's user: %w", path, err)
	}
	return nil
}

// give makes path, and everything under it, owned by r; nil r does
// nothing. Symlinks are changed themselves, never followed.
func (r *RunAs) give(path string) error {
	if r == nil {
		return nil
	}
	return filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return r.giveOne(p)
	})
}
