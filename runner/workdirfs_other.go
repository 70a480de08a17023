//go:build unix && !linux

package runner

import "errors"

// mountWorkdir is Linux's: elsewhere --app-disk must be 0.
func mountWorkdir(string, int64) (func(), error) {
	return nil, errors.New("--app-disk needs Linux: set it to 0")
}

// UnmountWorkdir does nothing outside Linux, where agents mount nothing.
func UnmountWorkdir(string) {}
