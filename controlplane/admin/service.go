package admin

import (
	"context"
	"errors"
	"log/slog"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/controlplane/auth"
	"github.com/gofastapi/gofastapi/controlplane/store"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

// Store is the platform data the service needs.
type Store interface {
	ListUsers(ctx context.Context) ([]*store.User, error)
	UserByRef(ctx context.Context, ref string) (*store.User, error)
	CreateUser(ctx context.Context, u *store.User) error
	SetAdmin(ctx context.Context, id string, admin bool) (bool, error)
	SetLimits(ctx context.Context, id string, l store.Limits) error
	MarkDeleting(ctx context.Context, id string) error
	DeleteUser(ctx context.Context, id string) error
	DeleteUserSessions(ctx context.Context, userID, except string) (int64, error)
	DeleteActivityOf(ctx context.Context, userID string) (int64, error)
	ListApps(ctx context.Context, ownerID string) ([]*store.App, error)
	CountUsers(ctx context.Context) (users, admins int64, err error)
	CountActiveSessions(ctx context.Context) (int64, error)
	StorageBytes(ctx context.Context) (int64, error)
	Settings(ctx context.Context) (*store.Settings, error)
	SetPublicSignups(ctx context.Context, on bool) error
	SetAllowedImports(ctx context.Context, modules []string) error
	SetAllowedPackages(ctx context.Context, packages []string) error
	RecordActivity(ctx context.Context, a *store.Activity) error
	ListActivity(ctx context.Context, n int64) ([]*store.Activity, error)
}

// TemplateCounter counts the platform's templates.
type TemplateCounter interface {
	CountTemplates(ctx context.Context) (int64, error)
}

// Runners is the service's view of the runner pool. The control plane
// does not import the pool; the wiring adapts it.
type Runners interface {
	// RunnerStats returns the number of warm runners and the ids of the
	// apps that have a runner.
	RunnerStats() (warm int, runningApps []string)
}

// UserStorage measures the users' platform databases.
type UserStorage interface {
	UserStorage(ctx context.Context) (databases, bytes int64, err error)
}

// OwnerRoutes writes a user's app routes again. Routes carry what the
// edge enforces of their owner (the request limit), so they must be
// rewritten when the owner's limits or role change.
type OwnerRoutes interface {
	RepublishOwnerRoutes(ctx context.Context, userID string) error
}

// Config configures a Service.
type Config struct {
	Store   Store
	Runners Runners
	// Templates, when set, counts the templates (global and users') for
	// the platform stats.
	Templates TemplateCounter
	// UserData are the owners of user data that DeleteUser asks to delete
	// a user's data, in order (see UserData).
	UserData []UserData
	// Routes, when set, rewrites a user's routes after SetLimits and
	// SetAdmin.
	Routes OwnerRoutes
	// UserStorage, when set, gives the platform figures the users'
	// databases and their storage.
	UserStorage UserStorage
	// DefaultImports is the built-in import allowlist.
	DefaultImports []string
	// DefaultPackages is the built-in dependency allowlist.
	DefaultPackages []string
	// PackageIndex is the package index apps' dependencies come from, as
	// the settings show it; empty if there is none.
	PackageIndex string
	Logger       *slog.Logger
}

// Validate reports whether c is complete.
func (c Config) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("admin: Config.Store is nil")
	case c.Runners == nil:
		return errors.New("admin: Config.Runners is nil")
	case len(c.DefaultImports) == 0:
		return errors.New("admin: Config.DefaultImports is empty")
	case c.Logger == nil:
		return errors.New("admin: Config.Logger is nil")
	}
	for _, d := range c.UserData {
		if d == nil {
			return errors.New("admin: Config.UserData has a nil entry")
		}
	}
	return nil
}

// Service implements gofastapiv1connect.AdminServiceHandler.
type Service struct{ cfg Config }

var _ gofastapiv1connect.AdminServiceHandler = (*Service)(nil)

// NewService returns an AdminService.
func NewService(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Service{cfg: cfg}, nil
}

// admin returns the caller if they are an admin.
func (s *Service) admin(ctx context.Context) (*store.User, error) {
	c, ok := auth.CallerFrom(ctx)
	if !ok {
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("not logged in"))
	}
	if !c.User.Admin {
		return nil, connectError(errNotAdmin)
	}
	return c.User, nil
}

// user returns the user named by ref (a username or id).
func (s *Service) user(ctx context.Context, ref string) (*store.User, error) {
	if ref == "" {
		return nil, s.fail("find user", invalid("name a user by username or id"))
	}
	u, err := s.cfg.Store.UserByRef(ctx, ref)
	if err != nil {
		return nil, s.fail("find user", err)
	}
	return u, nil
}

// record appends to the activity feed; losing an entry must not fail the
// action, so a failure is only logged.
func (s *Service) record(ctx context.Context, actor *store.User, kind, subject, detail string) {
	a := &store.Activity{ActorID: actor.ID, Actor: actor.Username, Kind: kind, Subject: subject, Detail: detail}
	if err := s.cfg.Store.RecordActivity(ctx, a); err != nil {
		s.cfg.Logger.Warn("record activity", "kind", kind, "err", err)
	}
}

// fail logs errors that become Internal or Aborted, then maps err for the
// client.
func (s *Service) fail(op string, err error) error {
	ce := connectError(err)
	if c := connect.CodeOf(ce); c == connect.CodeInternal || c == connect.CodeAborted {
		s.cfg.Logger.Error(op, "err", err)
	}
	return ce
}
