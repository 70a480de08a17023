package runner

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"
)

// Kinds of Specialize failure. Each maps to one Connect code in toConnect.
var (
	errAlreadySpecialized = errors.New("runner: already specialized")
	errInvalidRequest     = errors.New("runner: invalid request")
	errBundleNotFound     = errors.New("runner: bundle not found")
	errBundleCorrupt      = errors.New("runner: bundle corrupt")
	errBundleStore        = errors.New("runner: bundle store unavailable")
	errAppStart           = errors.New("runner: app failed to start")
	errAppTimeout         = errors.New("runner: app did not answer in time")
	errAppExited          = errors.New("runner: app process exited")
)

// userError is a failure whose message is written for the caller of
// Specialize: it names the app's file, line or limit, never agent internals.
type userError struct {
	kind error
	msg  string
}

func (e *userError) Error() string { return e.msg }
func (e *userError) Unwrap() error { return e.kind }

// failure returns a userError of the given kind.
func failure(kind error, format string, args ...any) error {
	return &userError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// toConnect classifies err, once, as the Connect error a Specialize caller
// sees. Errors that are not userErrors are the agent's own faults; their text
// goes to the agent's stderr via logf, and the caller sees only "internal error".
func toConnect(err error, logf func(format string, args ...any)) error {
	var ue *userError
	switch {
	case errors.As(err, &ue):
		return connect.NewError(codeOf(ue.kind), errors.New(ue.msg))
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, errors.New("specialize canceled"))
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, errors.New("specialize deadline exceeded"))
	default:
		logf("specialize: %v", err)
		return connect.NewError(connect.CodeInternal, errors.New("internal error"))
	}
}

func codeOf(kind error) connect.Code {
	switch kind {
	case errAlreadySpecialized:
		// Another claim of this runner came first (two pool managers, as in
		// a split brain): not the app's fault.
		return connect.CodeAborted
	case errAppStart, errAppExited:
		return connect.CodeFailedPrecondition
	case errInvalidRequest:
		return connect.CodeInvalidArgument
	case errBundleNotFound:
		return connect.CodeNotFound
	case errBundleCorrupt:
		return connect.CodeDataLoss
	case errBundleStore:
		return connect.CodeUnavailable
	case errAppTimeout:
		return connect.CodeDeadlineExceeded
	default:
		return connect.CodeInternal
	}
}
