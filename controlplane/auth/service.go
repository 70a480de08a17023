package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gofastapi/gofastapi/controlplane/store"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

var usernameRE = regexp.MustCompile(`^[a-z0-9_-]{3,32}$`)

// MinPasswordLen is the shortest password accepted.
const MinPasswordLen = 8

// Users is the storage the service needs.
type Users interface {
	CreateUser(ctx context.Context, u *store.User) error
	UserByName(ctx context.Context, username string) (*store.User, error)
	UserByID(ctx context.Context, id string) (*store.User, error)
	CreateSession(ctx context.Context, s *store.Session) error
	Session(ctx context.Context, id string) (*store.Session, error)
	DeleteSession(ctx context.Context, id string) error
}

// Service implements gofastapiv1connect.AuthServiceHandler.
type Service struct {
	users      Users
	sessionTTL time.Duration
	log        *slog.Logger
}

var _ gofastapiv1connect.AuthServiceHandler = (*Service)(nil)

// NewService returns an AuthService whose sessions last sessionTTL.
func NewService(users Users, sessionTTL time.Duration, log *slog.Logger) *Service {
	return &Service{users: users, sessionTTL: sessionTTL, log: log}
}

// Signup implements AuthService.Signup.
func (s *Service) Signup(ctx context.Context, req *connect.Request[v1.SignupRequest]) (*connect.Response[v1.SignupResponse], error) {
	name, pw := req.Msg.GetUsername(), req.Msg.GetPassword()
	if !usernameRE.MatchString(name) {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("username must be 3-32 characters of a-z, 0-9, _ and -"))
	}
	if len(pw) < MinPasswordLen {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("password must be at least %d characters", MinPasswordLen))
	}
	u := &store.User{Username: name, PasswordHash: HashPassword(pw)}
	if err := s.users.CreateUser(ctx, u); err != nil {
		return nil, s.fail(err)
	}
	token, err := s.newSession(ctx, u.ID)
	if err != nil {
		return nil, s.fail(err)
	}
	s.log.Info("signup", "user", u.Username, "admin", u.Admin)
	return connect.NewResponse(&v1.SignupResponse{User: userProto(u), Token: token}), nil
}

// Login implements AuthService.Login.
func (s *Service) Login(ctx context.Context, req *connect.Request[v1.LoginRequest]) (*connect.Response[v1.LoginResponse], error) {
	u, err := s.users.UserByName(ctx, req.Msg.GetUsername())
	hash := dummyHash
	if err == nil {
		hash = u.PasswordHash
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, s.fail(err)
	}
	ok, err := CheckPassword(hash, req.Msg.GetPassword())
	if err != nil {
		return nil, s.fail(err)
	}
	if !ok || u == nil {
		return nil, connectError(errBadCredentials)
	}
	token, err := s.newSession(ctx, u.ID)
	if err != nil {
		return nil, s.fail(err)
	}
	return connect.NewResponse(&v1.LoginResponse{User: userProto(u), Token: token}), nil
}

// Logout implements AuthService.Logout.
func (s *Service) Logout(ctx context.Context, req *connect.Request[v1.LogoutRequest]) (*connect.Response[v1.LogoutResponse], error) {
	c, ok := CallerFrom(ctx)
	if !ok {
		return nil, connectError(errUnauthenticated)
	}
	if err := s.users.DeleteSession(ctx, c.SessionID); err != nil {
		return nil, s.fail(err)
	}
	return connect.NewResponse(&v1.LogoutResponse{}), nil
}

// Me implements AuthService.Me.
func (s *Service) Me(ctx context.Context, req *connect.Request[v1.MeRequest]) (*connect.Response[v1.MeResponse], error) {
	c, ok := CallerFrom(ctx)
	if !ok {
		return nil, connectError(errUnauthenticated)
	}
	return connect.NewResponse(&v1.MeResponse{User: userProto(c.User)}), nil
}

func (s *Service) newSession(ctx context.Context, userID string) (string, error) {
	token, id := newToken()
	sess := &store.Session{ID: id, UserID: userID, ExpiresAt: time.Now().Add(s.sessionTTL)}
	if err := s.users.CreateSession(ctx, sess); err != nil {
		return "", err
	}
	return token, nil
}

// fail logs unexpected errors before they are hidden behind a generic message.
func (s *Service) fail(err error) error {
	ce := connectError(err)
	if connect.CodeOf(ce) == connect.CodeInternal {
		s.log.Error("auth", "err", err)
	}
	return ce
}

func userProto(u *store.User) *v1.User {
	return &v1.User{Id: u.ID, Username: u.Username, Admin: u.Admin, CreatedAt: timestamppb.New(u.CreatedAt)}
}
