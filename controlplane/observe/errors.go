package observe

import (
	"errors"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/controlplane/store"
)

var (
	errNotFound  = errors.New("observe: app not found")
	errNotLogged = errors.New("not logged in")
)

// connectError maps domain errors to Connect errors; it is the only place
// that does, and no driver or Redis text reaches the client.
func connectError(err error) error {
	var ce *connect.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return err
	case errors.Is(err, errNotFound), errors.Is(err, store.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, errNotFound)
	}
	return connect.NewError(connect.CodeInternal, errors.New("internal error"))
}
