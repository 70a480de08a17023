package auth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/controlplane/store"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

// Caller is the authenticated user of a request and the session it used.
type Caller struct {
	User      *store.User
	SessionID string
	// Cookie is true when the session came in the cookie, not a Bearer
	// header.
	Cookie bool
}

type callerKey struct{}

// CallerFrom returns the caller the interceptor attached to ctx.
func CallerFrom(ctx context.Context) (*Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(*Caller)
	return c, ok
}

// User returns the signed-in user of ctx, or an Unauthenticated error for
// a call that reached a service without one.
func User(ctx context.Context) (*store.User, error) {
	c, ok := CallerFrom(ctx)
	if !ok {
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("not logged in"))
	}
	return c.User, nil
}

func withCaller(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// public lists the procedures callable without a session.
var public = map[string]bool{
	gofastapiv1connect.AuthServiceSignupProcedure: true,
	gofastapiv1connect.AuthServiceLoginProcedure:  true,
}

// touchEvery is how stale a session's LastSeenAt may get before a call
// updates it: often enough for "last activity", rarely enough that calls
// do not each write to the database.
const touchEvery = time.Minute

// Sessions is the storage the interceptor needs.
type Sessions interface {
	Session(ctx context.Context, id string) (*store.Session, error)
	UserByID(ctx context.Context, id string) (*store.User, error)
	TouchSession(ctx context.Context, id, userID string, t time.Time) error
}

// Interceptor authenticates every RPC except Signup and Login, from its
// `Authorization: Bearer` token or else its session cookie, and refuses
// the call when that fails.
type Interceptor struct {
	sessions Sessions
	origins  map[string]bool
	log      *slog.Logger
}

var _ connect.Interceptor = (*Interceptor)(nil)

// NewInterceptor returns an Interceptor that looks sessions up in
// sessions and accepts cookie-authenticated calls only from origins (the
// platform's own, as in HTTPConfig.Origins).
func NewInterceptor(sessions Sessions, origins []string, log *slog.Logger) *Interceptor {
	i := &Interceptor{sessions: sessions, origins: map[string]bool{}, log: log}
	for _, o := range origins {
		i.origins[o] = true
	}
	return i
}

// credentials returns the session token of a request and whether it came
// in the cookie.
func (i *Interceptor) credentials(ctx context.Context, h http.Header) (string, bool, error) {
	if authz := h.Get("Authorization"); authz != "" {
		token, ok := strings.CutPrefix(authz, "Bearer ")
		if !ok || token == "" {
			return "", false, errBadAuthHeader
		}
		return token, false, nil
	}
	ci, _ := clientFrom(ctx)
	token := cookieToken(h, ci.https)
	if token == "" {
		return "", false, errUnauthenticated
	}
	// The browser attaches the cookie to any request to the platform,
	// whoever's page makes it: only a request that provably comes from
	// the platform's own page may use it.
	if !hasProof(h) || !allowedOrigin(h, i.origins) {
		return "", false, errCrossSite
	}
	return token, true, nil
}

func (i *Interceptor) authenticate(ctx context.Context, procedure string, h http.Header) (context.Context, error) {
	if public[procedure] {
		return ctx, nil
	}
	token, cookie, err := i.credentials(ctx, h)
	if err != nil {
		return nil, connectError(err)
	}
	id := tokenID(token)
	sess, err := i.sessions.Session(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, connectError(errSessionGone)
	} else if err != nil {
		return nil, i.fail(err)
	}
	u, err := i.sessions.UserByID(ctx, sess.UserID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.Deleting) {
		return nil, connectError(errSessionGone)
	} else if err != nil {
		return nil, i.fail(err)
	}
	if now := time.Now(); now.Sub(sess.LastSeenAt) > touchEvery {
		if err := i.sessions.TouchSession(ctx, id, u.ID, now); err != nil {
			i.log.Warn("touch session", "user", u.Username, "err", err)
		}
	}
	return withCaller(ctx, &Caller{User: u, SessionID: id, Cookie: cookie}), nil
}

func (i *Interceptor) fail(err error) error {
	i.log.Error("authenticate", "err", err)
	return connectError(err)
}

// WrapUnary implements connect.Interceptor.
func (i *Interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		ctx, err := i.authenticate(ctx, req.Spec().Procedure, req.Header())
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
		ctx, err := i.authenticate(ctx, conn.Spec().Procedure, conn.RequestHeader())
		if err != nil {
			return err
		}
		return next(ctx, conn)
	}
}
