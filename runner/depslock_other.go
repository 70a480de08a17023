//go:build !linux

package runner

import (
	"os"
	"time"
)

// lockDeps takes no lock where flock is not used: sets are then never
// pruned (see pruneDeps).
func lockDeps(root, hash string) (*os.File, error) { return nil, nil }

// pruneDeps removes nothing where the sets in use cannot be told apart.
func pruneDeps(root, except string, keep time.Duration, now time.Time) ([]string, error) {
	return nil, nil
}
