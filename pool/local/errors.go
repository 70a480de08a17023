package local

import "errors"

// ErrClosed is returned by Start after Close.
var ErrClosed = errors.New("local: backend closed")
