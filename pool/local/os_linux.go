package local

import "golang.org/x/sys/unix"

// zygoteSupported says whether runners can fork from a zygote here: the
// agent needs pidfds to signal a Python that is not its child.
const zygoteSupported = true

// isTmpfs reports whether dir is on a tmpfs.
func isTmpfs(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.TMPFS_MAGIC
}
