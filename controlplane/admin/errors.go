package admin

import (
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/controlplane/auth"
	"github.com/gofastapi/gofastapi/controlplane/store"
)

var (
	errNotAdmin   = errors.New("admin: this call needs an admin's session: ask an admin of this platform")
	errNoSuchUser = errors.New("admin: no such user: list them with `gofastapi admin users`")
	errSelfDemote = errors.New("admin: you cannot demote yourself: ask another admin to do it")
	errSelfDelete = errors.New("admin: you cannot delete your own account: ask another admin to do it")
	errTaken      = errors.New("admin: username is taken: choose another")
)

// invalidError is a request field with a bad value; its message says what
// to change.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }

func invalid(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

// lastAdminError refuses to remove the platform's last admin.
type lastAdminError struct{ username string }

func (e *lastAdminError) Error() string {
	return fmt.Sprintf("%s is the last admin of this platform: promote another user first", e.username)
}

// partialDeleteError reports a DeleteUser that stopped part way.
type partialDeleteError struct {
	username string
	step     string
	err      error
}

// message is what the client is told: no driver or Redis text.
func (e *partialDeleteError) message() string {
	return fmt.Sprintf("deleting %s stopped at %s; the account stays locked (no login, no sessions) until DeleteUser is repeated", e.username, e.step)
}

func (e *partialDeleteError) Error() string { return e.message() + ": " + e.err.Error() }

func (e *partialDeleteError) Unwrap() error { return e.err }

// connectError maps domain errors to Connect errors; it is the only place
// in this package that does, and no driver or Redis text reaches the
// client.
func connectError(err error) error {
	var (
		ce      *connect.Error
		inv     *invalidError
		authInv *auth.InvalidError
		last    *lastAdminError
		partial *partialDeleteError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return err
	case errors.As(err, &inv):
		return connect.NewError(connect.CodeInvalidArgument, errors.New(inv.msg))
	case errors.As(err, &authInv):
		return connect.NewError(connect.CodeInvalidArgument, errors.New(authInv.Msg))
	case errors.As(err, &last):
		return connect.NewError(connect.CodeFailedPrecondition, errors.New(last.Error()))
	case errors.As(err, &partial):
		return connect.NewError(connect.CodeAborted, errors.New(partial.message()))
	case errors.Is(err, errNotAdmin):
		return connect.NewError(connect.CodePermissionDenied, err)
	case errors.Is(err, errSelfDemote), errors.Is(err, errSelfDelete):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, errNoSuchUser), errors.Is(err, store.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, errNoSuchUser)
	case errors.Is(err, errTaken), errors.Is(err, store.ErrDuplicate):
		return connect.NewError(connect.CodeAlreadyExists, errTaken)
	}
	return connect.NewError(connect.CodeInternal, errors.New("internal error"))
}
