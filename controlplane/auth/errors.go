package auth

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/controlplane/store"
)

var (
	errBadCredentials  = errors.New("auth: wrong username or password")
	errUnauthenticated = errors.New("auth: not logged in: log in and send the session token as `Authorization: Bearer <token>`")
	errSessionGone     = errors.New("auth: session expired or revoked: log in again")
	errBadAuthHeader   = errors.New("auth: the Authorization header must be `Bearer <token>`")
	errCrossSite       = errors.New("auth: a call authenticated by the session cookie must send the header `Connect-Protocol-Version: 1` or `X-Gofastapi-Csrf: 1` from the platform's own origin")
	errSignupsOff      = errors.New("auth: public signups are off on this platform: ask an admin to create your account")
	errWrongPassword   = errors.New("auth: the current password is wrong")
	errNoSuchSession   = errors.New("auth: you have no session with that id: list them with ListSessions")
	errLimiterDown     = errors.New("auth: sign-in is unavailable for a moment: retry")
)

// InvalidError is a rule that an account's details break; its message
// says what to change.
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string { return e.Msg }

// rateError says that too many attempts came from one address or for one
// username, and when to retry.
type rateError struct {
	what  string // "from your address", "for this username"
	retry time.Duration
}

func (e *rateError) Error() string {
	return fmt.Sprintf("too many sign-in attempts %s: try again in %s", e.what, e.retry.Round(time.Second))
}

// connectError maps errors of this package and of the store to Connect codes,
// with messages a client can act on. It is the only place that does so.
func connectError(err error) error {
	var (
		ce   *connect.Error
		inv  *InvalidError
		rate *rateError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return err
	case errors.As(err, &inv):
		return connect.NewError(connect.CodeInvalidArgument, errors.New(inv.Msg))
	case errors.As(err, &rate):
		e := connect.NewError(connect.CodeResourceExhausted, errors.New(rate.Error()))
		e.Meta().Set("Retry-After", strconv.Itoa(int(max(1, (rate.retry+time.Second-1)/time.Second))))
		return e
	case errors.Is(err, errBadCredentials), errors.Is(err, errUnauthenticated),
		errors.Is(err, errSessionGone), errors.Is(err, errBadAuthHeader):
		return connect.NewError(connect.CodeUnauthenticated, err)
	case errors.Is(err, errCrossSite), errors.Is(err, errSignupsOff), errors.Is(err, errWrongPassword):
		return connect.NewError(connect.CodePermissionDenied, err)
	case errors.Is(err, errNoSuchSession):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, errLimiterDown):
		return connect.NewError(connect.CodeUnavailable, err)
	case errors.Is(err, store.ErrDuplicate):
		return connect.NewError(connect.CodeAlreadyExists, errors.New("username is taken: choose another"))
	}
	return connect.NewError(connect.CodeInternal, errors.New("internal error"))
}
