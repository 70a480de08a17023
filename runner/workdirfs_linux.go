package runner

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// mountWorkdir makes dir a tmpfs of its own of at most size bytes, so that
// what the app writes there (its files, TMPDIR, HOME) is bounded; it
// returns what unmounts it. It needs root.
func mountWorkdir(dir string, size int64) (unmount func(), err error) {
	opts := fmt.Sprintf("size=%d,mode=0700", size)
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return nil, fmt.Errorf("mount a %d-byte tmpfs on the workdir: %w", size, err)
	}
	return func() { UnmountWorkdir(dir) }, nil
}

// UnmountWorkdir detaches the file system an agent mounted on its workdir
// (--app-disk), if any: what the launcher calls for an agent that was
// killed before it did so itself.
func UnmountWorkdir(dir string) { _ = unix.Unmount(dir, unix.MNT_DETACH) }
