package databases

import (
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/controlplane/store"
)

var (
	errNoDatabase = errors.New("databases: database not found: list yours with `gofastapi db list`")
	errNoApp      = errors.New("databases: app not found")
	errNameTaken  = errors.New("databases: you already have a database with that name: choose another")
	errNoDocument = errors.New("databases: document not found")
	errLast       = errors.New("databases: this is your last database: create another before deleting it")
)

// invalidError is a request field with a bad value; its message says what
// to change.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }

func invalid(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

// inUseError refuses to delete a database apps use.
type inUseError struct {
	name string
	apps []string
}

func (e *inUseError) Error() string {
	apps := "app " + e.apps[0]
	if n := len(e.apps); n > 1 {
		apps = "apps " + strings.Join(e.apps[:n-1], ", ") + " and " + e.apps[n-1]
	}
	return fmt.Sprintf("database %s is used by %s: choose another database for them first (in the app's settings, or gofastapi db use APP DATABASE)", e.name, apps)
}

// limitError refuses a database or a write beyond the caller's limits.
type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }

// connectError maps domain errors to Connect errors; it is the only place
// in this package that does, and no driver text reaches the client.
func connectError(err error) error {
	var (
		ce    *connect.Error
		inv   *invalidError
		inUse *inUseError
		limit *limitError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return err
	case errors.As(err, &inv):
		return connect.NewError(connect.CodeInvalidArgument, errors.New(inv.msg))
	case errors.As(err, &inUse):
		return connect.NewError(connect.CodeFailedPrecondition, errors.New(inUse.Error()))
	case errors.As(err, &limit):
		return connect.NewError(connect.CodeResourceExhausted, errors.New(limit.msg))
	case errors.Is(err, errLast):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, errNoDatabase), errors.Is(err, errNoApp), errors.Is(err, errNoDocument):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, errNameTaken), errors.Is(err, store.ErrDuplicate):
		return connect.NewError(connect.CodeAlreadyExists, errNameTaken)
	case errors.Is(err, store.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, errNoDatabase)
	}
	return connect.NewError(connect.CodeInternal, errors.New("internal error"))
}
