package auth

import (
	"context"
	"errors"
	"strings"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/controlplane/store"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

// Caller is the authenticated user of a request and the session it used.
type Caller struct {
	User      *store.User
	SessionID string
}

type callerKey struct{}

// CallerFrom returns the caller the interceptor attached to ctx.
func CallerFrom(ctx context.Context) (*Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(*Caller)
	return c, ok
}

// public lists the procedures callable without a session.
var public = map[string]bool{
	gofastapiv1connect.AuthServiceSignupProcedure: true,
	gofastapiv1connect.AuthServiceLoginProcedure:  true,
}

// Interceptor authenticates every RPC except Signup and Login from its
// `Authorization: Bearer` token and refuses the call when that fails.
type Interceptor struct{ users Users }

var _ connect.Interceptor = (*Interceptor)(nil)

// NewInterceptor returns an Interceptor that looks sessions up in users.
func NewInterceptor(users Users) *Interceptor { return &Interceptor{users: users} }

func (i *Interceptor) authenticate(ctx context.Context, procedure, authz string) (context.Context, error) {
	if public[procedure] {
		return ctx, nil
	}
	token, ok := strings.CutPrefix(authz, "Bearer ")
	if !ok || token == "" {
		return nil, connectError(errUnauthenticated)
	}
	id := tokenID(token)
	sess, err := i.users.Session(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("session expired or revoked: log in again"))
	} else if err != nil {
		return nil, connectError(err)
	}
	u, err := i.users.UserByID(ctx, sess.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, connectError(errUnauthenticated)
	} else if err != nil {
		return nil, connectError(err)
	}
	return context.WithValue(ctx, callerKey{}, &Caller{User: u, SessionID: id}), nil
}

// WrapUnary implements connect.Interceptor.
func (i *Interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		ctx, err := i.authenticate(ctx, req.Spec().Procedure, req.Header().Get("Authorization"))
		if err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

// WrapStreamingClient implements connect.Interceptor.
func (i *Interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor.
func (i *Interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, err := i.authenticate(ctx, conn.Spec().Procedure, conn.RequestHeader().Get("Authorization"))
		if err != nil {
			return err
		}
		return next(ctx, conn)
	}
}
