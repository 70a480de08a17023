package ratelimit

import "errors"

// ErrBadRate means a rate was not written as N/DURATION.
var ErrBadRate = errors.New("ratelimit: rate must be N/DURATION, for example 20/1m, or 0 for no limit")
