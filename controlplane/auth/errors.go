package auth

import (
	"errors"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/controlplane/store"
)

var (
	errBadCredentials  = errors.New("auth: wrong username or password")
	errUnauthenticated = errors.New("auth: not logged in: log in and send the session token as `Authorization: Bearer <token>`")
)

// connectError maps errors of this package and of the store to Connect codes,
// with messages a client can act on. It is the only place that does so.
func connectError(err error) error {
	var ce *connect.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return err
	case errors.Is(err, errBadCredentials), errors.Is(err, errUnauthenticated):
		return connect.NewError(connect.CodeUnauthenticated, err)
	case errors.Is(err, store.ErrDuplicate):
		return connect.NewError(connect.CodeAlreadyExists, errors.New("username is taken: choose another"))
	}
	return connect.NewError(connect.CodeInternal, errors.New("internal error"))
}
