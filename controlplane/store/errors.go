package store

import "errors"

var (
	// ErrNotFound means the record does not exist (or is not the caller's).
	ErrNotFound = errors.New("store: not found")
	// ErrDuplicate means a unique field (username, app name) is already taken.
	ErrDuplicate = errors.New("store: duplicate")
)
