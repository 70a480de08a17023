//go:build !linux

package local

// zygoteSupported is false outside Linux: the agent needs pidfds to signal a
// Python that is not its child, so every runner starts its own.
const zygoteSupported = false

// isTmpfs reports false: outside Linux, working directories stay in Dir.
func isTmpfs(dir string) bool { return false }
