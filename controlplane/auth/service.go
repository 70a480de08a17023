package auth

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gofastapi/gofastapi/controlplane/store"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

// Users is the storage the service needs.
type Users interface {
	Sessions
	CreateUser(ctx context.Context, u *store.User) error
	UserByName(ctx context.Context, username string) (*store.User, error)
	SetPassword(ctx context.Context, id, hash string) error
	CreateSession(ctx context.Context, s *store.Session) error
	DeleteSession(ctx context.Context, id string) error
	DeleteUserSession(ctx context.Context, userID, id string) error
	DeleteUserSessions(ctx context.Context, userID, except string) (int64, error)
	ListSessions(ctx context.Context, userID string) ([]*store.Session, error)
	Settings(ctx context.Context) (*store.Settings, error)
	RecordActivity(ctx context.Context, a *store.Activity) error
}

// Config configures a Service.
type Config struct {
	Users   Users
	Limiter Limiter
	Rates   RateLimits
	// SessionTTL is how long a session lasts.
	SessionTTL time.Duration
	Logger     *slog.Logger
}

// Validate reports whether c is complete.
func (c Config) Validate() error {
	switch {
	case c.Users == nil:
		return errors.New("auth: Config.Users is nil")
	case c.Limiter == nil:
		return errors.New("auth: Config.Limiter is nil")
	case c.SessionTTL <= 0:
		return errors.New("auth: Config.SessionTTL must be positive")
	case c.Logger == nil:
		return errors.New("auth: Config.Logger is nil")
	}
	return nil
}

// Service implements gofastapiv1connect.AuthServiceHandler.
type Service struct{ cfg Config }

var _ gofastapiv1connect.AuthServiceHandler = (*Service)(nil)

// NewService returns an AuthService.
func NewService(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Made now, so that the first login of an unknown user takes no longer
	// than any other.
	dummyHash()
	return &Service{cfg: cfg}, nil
}

// session is what a Signup or Login hands out.
type session struct {
	token  string
	cookie string // Set-Cookie value
}

// Signup implements AuthService.Signup.
func (s *Service) Signup(ctx context.Context, req *connect.Request[v1.SignupRequest]) (*connect.Response[v1.SignupResponse], error) {
	m := req.Msg
	if err := s.checkRate(ctx, clientAddr(ctx, req.Peer()), m.GetUsername()); err != nil {
		return nil, s.fail(err)
	}
	st, err := s.cfg.Users.Settings(ctx)
	if err != nil {
		return nil, s.fail(err)
	}
	if !st.PublicSignups {
		return nil, s.fail(errSignupsOff)
	}
	u, err := NewUser(m.GetUsername(), m.GetPassword(), m.GetEmail())
	if err != nil {
		return nil, s.fail(err)
	}
	if err := s.cfg.Users.CreateUser(ctx, u); err != nil {
		return nil, s.fail(err)
	}
	s.record(ctx, &store.Activity{ActorID: u.ID, Actor: u.Username, Kind: store.ActivitySignup, Subject: u.Username, Detail: adminNote(u)})
	sess, err := s.newSession(ctx, u.ID, req.Peer(), req.Header())
	if err != nil {
		return nil, s.fail(err)
	}
	s.cfg.Logger.Info("signup", "user", u.Username, "admin", u.Admin)
	res := connect.NewResponse(&v1.SignupResponse{User: UserProto(u), Token: bodyToken(req.Header(), sess)})
	res.Header().Add("Set-Cookie", sess.cookie)
	return res, nil
}

func adminNote(u *store.User) string {
	if u.Admin {
		return "first user: admin"
	}
	return ""
}

// Login implements AuthService.Login.
func (s *Service) Login(ctx context.Context, req *connect.Request[v1.LoginRequest]) (*connect.Response[v1.LoginResponse], error) {
	name := strings.ToLower(strings.TrimSpace(req.Msg.GetUsername()))
	if err := s.checkRate(ctx, clientAddr(ctx, req.Peer()), name); err != nil {
		return nil, s.fail(err)
	}
	u, err := s.cfg.Users.UserByName(ctx, name)
	hash := dummyHash()
	if err == nil {
		hash = u.PasswordHash
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, s.fail(err)
	}
	ok, err := CheckPassword(hash, req.Msg.GetPassword())
	if err != nil {
		return nil, s.fail(err)
	}
	if !ok || u == nil || u.Deleting {
		return nil, s.fail(errBadCredentials)
	}
	sess, err := s.newSession(ctx, u.ID, req.Peer(), req.Header())
	if err != nil {
		return nil, s.fail(err)
	}
	res := connect.NewResponse(&v1.LoginResponse{User: UserProto(u), Token: bodyToken(req.Header(), sess)})
	res.Header().Add("Set-Cookie", sess.cookie)
	return res, nil
}

// Logout implements AuthService.Logout.
func (s *Service) Logout(ctx context.Context, req *connect.Request[v1.LogoutRequest]) (*connect.Response[v1.LogoutResponse], error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	var n int64 = 1
	if req.Msg.GetEverywhere() {
		n, err = s.cfg.Users.DeleteUserSessions(ctx, c.User.ID, "")
	} else {
		err = s.cfg.Users.DeleteSession(ctx, c.SessionID)
	}
	if err != nil {
		return nil, s.fail(err)
	}
	res := connect.NewResponse(&v1.LogoutResponse{Revoked: int32(n)})
	res.Header().Add("Set-Cookie", clearedCookie(isHTTPS(ctx)).String())
	return res, nil
}

// Me implements AuthService.Me.
func (s *Service) Me(ctx context.Context, req *connect.Request[v1.MeRequest]) (*connect.Response[v1.MeResponse], error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.MeResponse{User: UserProto(c.User)}), nil
}

// ListSessions implements AuthService.ListSessions.
func (s *Service) ListSessions(ctx context.Context, req *connect.Request[v1.ListSessionsRequest]) (*connect.Response[v1.ListSessionsResponse], error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	ss, err := s.cfg.Users.ListSessions(ctx, c.User.ID)
	if err != nil {
		return nil, s.fail(err)
	}
	out := &v1.ListSessionsResponse{}
	for _, x := range ss {
		out.Sessions = append(out.Sessions, &v1.Session{
			Id: x.ID, CreatedAt: timestamppb.New(x.CreatedAt), ExpiresAt: timestamppb.New(x.ExpiresAt),
			LastSeenAt: timestamppb.New(x.LastSeenAt), ClientAddress: x.Address, UserAgent: x.UserAgent,
			Current: x.ID == c.SessionID,
		})
	}
	return connect.NewResponse(out), nil
}

// RevokeSession implements AuthService.RevokeSession.
func (s *Service) RevokeSession(ctx context.Context, req *connect.Request[v1.RevokeSessionRequest]) (*connect.Response[v1.RevokeSessionResponse], error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	err = s.cfg.Users.DeleteUserSession(ctx, c.User.ID, req.Msg.GetId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, s.fail(errNoSuchSession)
	} else if err != nil {
		return nil, s.fail(err)
	}
	res := connect.NewResponse(&v1.RevokeSessionResponse{})
	if req.Msg.GetId() == c.SessionID {
		res.Header().Add("Set-Cookie", clearedCookie(isHTTPS(ctx)).String())
	}
	return res, nil
}

// ChangePassword implements AuthService.ChangePassword.
func (s *Service) ChangePassword(ctx context.Context, req *connect.Request[v1.ChangePasswordRequest]) (*connect.Response[v1.ChangePasswordResponse], error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	// The current password is checked like a login: a stolen session
	// must not become an unlimited password oracle.
	if err := s.checkRate(ctx, clientAddr(ctx, req.Peer()), c.User.Username); err != nil {
		return nil, s.fail(err)
	}
	ok, err := CheckPassword(c.User.PasswordHash, req.Msg.GetCurrentPassword())
	if err != nil {
		return nil, s.fail(err)
	}
	if !ok {
		return nil, s.fail(errWrongPassword)
	}
	if err := checkPassword(req.Msg.GetNewPassword()); err != nil {
		return nil, s.fail(err)
	}
	if err := s.cfg.Users.SetPassword(ctx, c.User.ID, HashPassword(req.Msg.GetNewPassword())); err != nil {
		return nil, s.fail(err)
	}
	n, err := s.cfg.Users.DeleteUserSessions(ctx, c.User.ID, c.SessionID)
	if err != nil {
		return nil, s.fail(err)
	}
	s.record(ctx, &store.Activity{ActorID: c.User.ID, Actor: c.User.Username, Kind: store.ActivityPasswordChange, Subject: c.User.Username})
	return connect.NewResponse(&v1.ChangePasswordResponse{RevokedSessions: int32(n)}), nil
}

func (s *Service) newSession(ctx context.Context, userID string, peer connect.Peer, h http.Header) (session, error) {
	token, id := newToken()
	ua := h.Get("User-Agent")
	if len(ua) > 200 {
		ua = ua[:200]
	}
	sess := &store.Session{ID: id, UserID: userID, ExpiresAt: time.Now().Add(s.cfg.SessionTTL), Address: clientAddr(ctx, peer), UserAgent: ua}
	if err := s.cfg.Users.CreateSession(ctx, sess); err != nil {
		return session{}, err
	}
	return session{token: token, cookie: sessionCookie(token, s.cfg.SessionTTL, isHTTPS(ctx)).String()}, nil
}

// bodyToken is the token to put in a Signup or Login response body: none
// for a browser (a request with an Origin header), which keeps the session
// in the HttpOnly cookie where no script can read it.
func bodyToken(h http.Header, sess session) string {
	if h.Get("Origin") != "" {
		return ""
	}
	return sess.token
}

// record appends to the activity feed; losing an entry must not fail the
// action, so a failure is only logged.
func (s *Service) record(ctx context.Context, a *store.Activity) {
	if err := s.cfg.Users.RecordActivity(ctx, a); err != nil {
		s.cfg.Logger.Warn("record activity", "kind", a.Kind, "err", err)
	}
}

// fail logs unexpected errors before they are hidden behind a generic message.
func (s *Service) fail(err error) error {
	ce := connectError(err)
	if connect.CodeOf(ce) == connect.CodeInternal {
		s.cfg.Logger.Error("auth", "err", err)
	}
	return ce
}

func caller(ctx context.Context) (*Caller, error) {
	c, ok := CallerFrom(ctx)
	if !ok {
		return nil, connectError(errUnauthenticated)
	}
	return c, nil
}

// clientAddr is the request's client address as the HTTP layer found it,
// else the connection's peer.
func clientAddr(ctx context.Context, peer connect.Peer) string {
	if ci, ok := clientFrom(ctx); ok {
		return ci.addr
	}
	if h, _, err := net.SplitHostPort(peer.Addr); err == nil {
		return h
	}
	return peer.Addr
}

func isHTTPS(ctx context.Context) bool {
	ci, _ := clientFrom(ctx)
	return ci.https
}

// UserProto is u as its owner (or an admin) sees it.
func UserProto(u *store.User) *v1.User {
	return &v1.User{Id: u.ID, Username: u.Username, Admin: u.Admin, CreatedAt: timestamppb.New(u.CreatedAt), Email: u.Email}
}
