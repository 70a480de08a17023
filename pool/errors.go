package pool

import "errors"

var (
	// ErrClosed is returned by Claim after Close.
	ErrClosed = errors.New("pool: closed")
	// ErrCapacity means every runner the pool may have is in use.
	ErrCapacity = errors.New("pool: at capacity")
)
