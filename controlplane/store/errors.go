package store

import "errors"

var (
	// ErrNotFound means the record does not exist (or is not the caller's).
	ErrNotFound = errors.New("store: not found")
	// ErrDuplicate means a unique field (username, app name) is already taken.
	ErrDuplicate = errors.New("store: duplicate")
	// ErrLastAdmin means the change would leave the platform without an
	// admin.
	ErrLastAdmin = errors.New("store: last admin")
	// ErrDecided means an assistant's proposal was accepted or rejected
	// already.
	ErrDecided = errors.New("store: already decided")
)
