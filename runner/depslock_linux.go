package runner

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// An unpacked dependency set in the host's shared cache is in use while a
// runner's agent holds a shared flock on its lock file, <hash>.lock beside
// it, which the agent keeps open until it exits (with its app). A pruner
// removes a set only while it holds the lock exclusively, and then removes
// the lock file too; a runner that locked a file removed meanwhile locks
// again (see lockDeps).

// lockDeps takes a shared lock on hash's lock file under root, making it
// if needed, and returns the open file that holds the lock.
func lockDeps(root, hash string) (*os.File, error) {
	return lockFile(filepath.Join(root, hash+".lock"), syscall.LOCK_SH)
}

// lockFile opens (or makes) path and flocks it with how, and returns it,
// once the lock is on the file path still names: a lock on a file a pruner
// removed while this one waited protects nothing, so it is taken again.
// With LOCK_NB, a lock held elsewhere returns an error wrapping
// syscall.EWOULDBLOCK.
func lockFile(path string, how int) (*os.File, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		if err := flock(f, how); err != nil {
			f.Close()
			return nil, err
		}
		var held, named syscall.Stat_t
		if syscall.Fstat(int(f.Fd()), &held) == nil && syscall.Stat(path, &named) == nil && held.Ino == named.Ino && held.Dev == named.Dev {
			return f, nil
		}
		f.Close()
	}
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// pruneDeps removes from the shared cache root the dependency sets no
// runner holds that were last used more than keep ago, besides the one
// named except, and what unpacks and removals that were cut off left
// behind. It returns the names it removed.
func pruneDeps(root, except string, keep time.Duration, now time.Time) ([]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	tried := map[string]bool{} // sets, by their directory or lock file
	for _, e := range entries {
		name := e.Name()
		info, err := e.Info()
		if err != nil || now.Sub(info.ModTime()) <= keep {
			continue
		}
		hash := strings.TrimSuffix(name, ".lock")
		switch {
		case strings.HasPrefix(name, ".unpack-") || strings.HasPrefix(name, ".prune-"):
			// An unpack or a removal whose agent was killed: old enough
			// that no agent is still at it.
			if err := os.RemoveAll(filepath.Join(root, name)); err != nil {
				errs = append(errs, err)
				continue
			}
		case sha256Hex(hash) && hash != except && !tried[hash]:
			tried[hash] = true
			ok, err := pruneSet(root, hash, keep, now)
			if err != nil {
				errs = append(errs, err)
			}
			if !ok {
				continue
			}
			name = hash
		default:
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}

// pruneSet removes dependency set hash if no runner holds it and it was
// not used meanwhile, and reports whether it did.
func pruneSet(root, hash string, keep time.Duration, now time.Time) (bool, error) {
	lockPath := filepath.Join(root, hash+".lock")
	f, err := lockFile(lockPath, syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil // in use
	}
	if err != nil {
		return false, fmt.Errorf("prune dependencies %s: %w", hash, err)
	}
	defer f.Close()
	dir := filepath.Join(root, hash)
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// A lock file left by an unpack that failed.
		os.Remove(lockPath)
		return true, nil
	case err != nil || now.Sub(info.ModTime()) <= keep:
		return false, nil // used since the listing
	}
	// Renamed first, so no runner finds half of it; then removed at leisure.
	trash, err := os.MkdirTemp(root, ".prune-")
	if err != nil {
		return false, fmt.Errorf("prune dependencies %s: %w", hash, err)
	}
	if err := os.Rename(dir, filepath.Join(trash, "d")); err != nil {
		os.Remove(trash)
		return false, fmt.Errorf("prune dependencies %s: %w", hash, err)
	}
	os.Remove(lockPath)
	if err := os.RemoveAll(trash); err != nil {
		return true, fmt.Errorf("prune dependencies %s: %w", hash, err)
	}
	return true, nil
}
