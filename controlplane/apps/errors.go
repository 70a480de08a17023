package apps

import (
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/controlplane/store"
	"github.com/gofastapi/gofastapi/controlplane/validate"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

var (
	errNotFound  = errors.New("apps: app not found")
	errNameTaken = errors.New("apps: app name is taken: choose another")
)

// limitError refuses a new app beyond the owner's app limit.
type limitError struct {
	limit int
	tier  string
}

func (e *limitError) Error() string {
	apps := "apps"
	if e.limit == 1 {
		apps = "app"
	}
	return fmt.Sprintf("app limit reached: your limit is %d %s (tier %s): delete an app or ask an admin to raise the limit", e.limit, apps, e.tier)
}

// invalidFiles is the error of a deploy whose files did not validate.
type invalidFiles struct{ problems []validate.Problem }

func (e *invalidFiles) Error() string {
	p := e.problems[0]
	msg := p.Message
	if p.File != "" {
		loc := p.File
		if p.Line > 0 {
			loc = fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
		}
		msg = loc + ": " + msg
	}
	if n := len(e.problems) - 1; n > 0 {
		msg += fmt.Sprintf(" (and %d more)", n)
	}
	return msg
}

// connectError maps domain errors to Connect errors; it is the only place
// that does, and no driver or Redis text reaches the client.
func connectError(err error) error {
	var (
		ce    *connect.Error
		inv   *invalidFiles
		limit *limitError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return err
	case errors.As(err, &inv):
		e := connect.NewError(connect.CodeInvalidArgument, errors.New(inv.Error()))
		for _, p := range inv.problems {
			d, derr := connect.NewErrorDetail(&v1.ValidationError{File: p.File, Line: int32(p.Line), Column: int32(p.Column), Message: p.Message})
			if derr == nil {
				e.AddDetail(d)
			}
		}
		return e
	case errors.As(err, &limit):
		return connect.NewError(connect.CodeResourceExhausted, errors.New(limit.Error()))
	case errors.Is(err, errNotFound), errors.Is(err, store.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, errNotFound)
	case errors.Is(err, errNameTaken), errors.Is(err, store.ErrDuplicate):
		return connect.NewError(connect.CodeAlreadyExists, errNameTaken)
	}
	return connect.NewError(connect.CodeInternal, errors.New("internal error"))
}
