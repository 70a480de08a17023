package apps

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gofastapi/gofastapi/controlplane/auth"
	"github.com/gofastapi/gofastapi/controlplane/deps"
	"github.com/gofastapi/gofastapi/controlplane/logstore"
	"github.com/gofastapi/gofastapi/controlplane/ratelimit"
	"github.com/gofastapi/gofastapi/controlplane/store"
	"github.com/gofastapi/gofastapi/controlplane/validate"
	"github.com/gofastapi/gofastapi/proto/bundle"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

// Store is the platform data the service needs.
type Store interface {
	CreateApp(ctx context.Context, a *store.App) error
	OwnedApp(ctx context.Context, ownerID, idOrName string) (*store.App, error)
	AppByName(ctx context.Context, name string) (*store.App, error)
	ListApps(ctx context.Context, ownerID string) ([]*store.App, error)
	SetDeployed(ctx context.Context, id string, v *store.Version) error
	DeleteApp(ctx context.Context, id string) error
	PutVersion(ctx context.Context, v *store.Version) error
	Version(ctx context.Context, appID, hash string) (*store.Version, error)
	VersionHashes(ctx context.Context, appID string) ([]string, error)
	HashInUse(ctx context.Context, hash string) (bool, error)
	VersionDeps(ctx context.Context, appID string) ([]string, error)
	CountApps(ctx context.Context, ownerID string) (int64, error)
	RecordActivity(ctx context.Context, a *store.Activity) error
	AppByID(ctx context.Context, id string) (*store.App, error)
	UpdateApp(ctx context.Context, id string, u store.AppUpdate) (*store.App, error)
	PutDraft(ctx context.Context, d *store.Draft) error
	Draft(ctx context.Context, appID string) (*store.Draft, error)
	DraftHashes(ctx context.Context, appIDs []string) (map[string]store.Draft, error)
	SetEnv(ctx context.Context, id string, env []store.EnvVar, rev string) error
	SetEnvRev(ctx context.Context, id, rev string) error
	ListVersions(ctx context.Context, appID string, limit int64) ([]*store.Version, error)
	VersionByPrefix(ctx context.Context, appID, prefix string) (*store.Version, error)
	UserByID(ctx context.Context, id string) (*store.User, error)
	AddDomain(ctx context.Context, host, appID, ownerID string) error
	RemoveDomain(ctx context.Context, host, appID string) error
	AppDomains(ctx context.Context, appID string) ([]string, error)
	DomainApp(ctx context.Context, host string) (string, error)
	Domains(ctx context.Context) ([]store.Domain, error)
	AppDomainsFailing(ctx context.Context, appID string) ([]string, error)
	DomainMisses(ctx context.Context, host, appID string) (int, error)
	SetDomainMisses(ctx context.Context, host, appID string, misses int) error
}

// ImportSource returns the import allowlist in force. It is asked at every
// deploy, so an admin's change applies to the next validation.
type ImportSource interface {
	AllowedImports(ctx context.Context) ([]string, error)
}

// Publisher writes bundles and routes for the edge.
type Publisher interface {
	PutBundle(ctx context.Context, files []bundle.File) (string, error)
	PutCompiled(ctx context.Context, version string, files []bundle.File) error
	HasBundle(ctx context.Context, hash string) (bool, error)
	DeleteBundle(ctx context.Context, hash string) error
	SetRoute(ctx context.Context, r *v1.Route) error
	DeleteRoute(ctx context.Context, slug string) error
	Route(ctx context.Context, slug string) (*v1.Route, error)
	SetDomain(ctx context.Context, host, slug string) error
	DeleteDomain(ctx context.Context, host string) error
	Domain(ctx context.Context, host string) (string, error)
}

// Validator checks files before they are stored, and compiles those deployed.
type Validator interface {
	Check(ctx context.Context, files []bundle.File, entrypoint string, allowed []string, provided ...string) ([]validate.Problem, error)
	CheckCompiled(ctx context.Context, files []bundle.File, entrypoint string, allowed []string, provided ...string) ([]validate.Problem, []bundle.File, error)
}

// Dependencies installs the packages an app's requirements.txt declares
// (see controlplane/deps).
type Dependencies interface {
	// Resolve returns the installed dependencies of files, nil when they
	// declare none, or problems in requirements.txt.
	Resolve(ctx context.Context, files []bundle.File) (*deps.Set, []validate.Problem, error)
	// Publish makes sure Redis has the dependency archive archive.
	Publish(ctx context.Context, archive string) error
	// Drop deletes those of archives no version names any more and
	// returns how many.
	Drop(ctx context.Context, archives []string) (int64, error)
	// Kept reports whether archive is still kept, once a stored version
	// names it: a Drop running at the same time may have freed it.
	Kept(ctx context.Context, archive string) (bool, error)
}

// Logs keeps app logs.
type Logs interface {
	Append(ctx context.Context, appID string, l logstore.Line) error
	Tail(ctx context.Context, appID string, n int64) ([]logstore.Line, error)
	Delete(ctx context.Context, appID string) error
	ColdStarts(ctx context.Context, appID string, n int64) ([]*v1.ColdStart, error)
	TailFrom(ctx context.Context, appID string, n int64) ([]logstore.Line, string, error)
	Follow(ctx context.Context, appID, pos string, f func(logstore.Line) error) error
	AppendEvent(ctx context.Context, appID string, e *v1.Event) error
	Events(ctx context.Context, appID string, n int64) ([]*v1.Event, string, error)
	FollowEvents(ctx context.Context, appID, pos string, f func(*v1.Event) error) error
}

// Limiter counts events per key across replicas (see
// controlplane/ratelimit).
type Limiter interface {
	Allow(ctx context.Context, key string, r ratelimit.Rate) (ok bool, retry time.Duration, err error)
}

// Sealer encrypts secrets at rest (see controlplane/secretbox).
type Sealer interface {
	Seal(plaintext []byte, label string) ([]byte, error)
	Open(sealed []byte, label string) ([]byte, error)
}

// PlatformEnv supplies the environment the platform gives an app (for
// example PLATFORM_MONGO_URI). Its values win over the app's own.
type PlatformEnv interface {
	AppEnv(ctx context.Context, app *store.App) (map[string]string, error)
}

// Templates finds the template an app is created from: a global one or
// one of userID's own.
type Templates interface {
	Lookup(ctx context.Context, userID, id string) (*Template, error)
}

// Template is what an app takes from a template.
type Template struct {
	ID, Framework, Mode, Entrypoint string
	Files                           []bundle.File
}

// Warmer starts a runner for a route's version (see gateway.Warm). An
// error that says it is the app's fault (AppFault) means the app does not
// start; any other, that no runner could be started right now.
type Warmer interface {
	Warm(ctx context.Context, route *v1.Route) error
}

// Config configures a Service.
type Config struct {
	Store     Store
	Publisher Publisher
	Validator Validator
	Logs      Logs
	// URL returns the public URL of the app called slug.
	URL func(slug string) string
	// Domain is the platform's apex domain: app NAME is at NAME.Domain,
	// which a custom domain's CNAME record must point at.
	Domain string
	// Resolver checks custom domains' CNAME records; nil means the
	// system's resolver.
	Resolver CNAMEResolver
	// Rechecks, when set, is shared by every control-plane replica: of
	// the replicas re-checking custom domains, one checks each domain in
	// an interval. Without it each replica checks every domain.
	Rechecks Limiter
	// Imports is the import allowlist applied at validation.
	Imports ImportSource
	// Deps, when set, installs the packages of apps' requirements.txt;
	// without it requirements.txt is an ordinary file.
	Deps Dependencies
	// Secrets seals app secrets.
	Secrets Sealer
	// PlatformEnv, when set, adds the platform's variables to every app's
	// environment.
	PlatformEnv PlatformEnv
	// Templates, when set, lets apps be created from templates and gives
	// new apps their framework's starter files.
	Templates Templates
	Logger    *slog.Logger
}

// SetWarmer sets what warms new versions at deploy: the gateway, which is
// made after the Service it looks routes up in.
func (s *Service) SetWarmer(w Warmer) { s.warmer.Store(&w) }

// Validate reports whether c is complete.
func (c Config) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("apps: Config.Store is nil")
	case c.Publisher == nil:
		return errors.New("apps: Config.Publisher is nil")
	case c.Validator == nil:
		return errors.New("apps: Config.Validator is nil")
	case c.Logs == nil:
		return errors.New("apps: Config.Logs is nil")
	case c.URL == nil:
		return errors.New("apps: Config.URL is nil")
	case c.Domain == "":
		return errors.New("apps: Config.Domain is empty")
	case c.Imports == nil:
		return errors.New("apps: Config.Imports is nil")
	case c.Secrets == nil:
		return errors.New("apps: Config.Secrets is nil")
	case c.Logger == nil:
		return errors.New("apps: Config.Logger is nil")
	}
	return nil
}

// Service implements gofastapiv1connect.AppServiceHandler.
type Service struct {
	cfg Config
	// warmer, once set (SetWarmer), warms each new version at deploy (the
	// warm stage); without it the first request starts the app.
	warmer atomic.Pointer[Warmer]
	// deploying counts the deploys running per app id (*atomic.Int32).
	deploying sync.Map
}

var _ gofastapiv1connect.AppServiceHandler = (*Service)(nil)

// NewService returns an AppService.
func NewService(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Service{cfg: cfg}, nil
}

// deployStarted counts a deploy of appID in until the returned func.
func (s *Service) deployStarted(appID string) func() {
	v, _ := s.deploying.LoadOrStore(appID, new(atomic.Int32))
	n := v.(*atomic.Int32)
	n.Add(1)
	return func() { n.Add(-1) }
}

// isDeploying reports whether a deploy of appID runs.
func (s *Service) isDeploying(appID string) bool {
	v, ok := s.deploying.Load(appID)
	return ok && v.(*atomic.Int32).Load() > 0
}

// fail logs errors that become Internal, then maps err for the client.
func (s *Service) fail(op string, err error) error {
	ce := connectError(err)
	if connect.CodeOf(ce) == connect.CodeInternal {
		s.cfg.Logger.Error(op, "err", err)
	}
	return ce
}

// DeleteApp implements AppService.DeleteApp (see removeApp).
func (s *Service) DeleteApp(ctx context.Context, req *connect.Request[v1.DeleteAppRequest]) (*connect.Response[v1.DeleteAppResponse], error) {
	u, err := auth.User(ctx)
	if err != nil {
		return nil, err
	}
	a, err := s.owned(ctx, req.Msg.GetIdOrName())
	if err != nil {
		return nil, err
	}
	if _, err := s.removeApp(ctx, a); err != nil {
		return nil, s.fail("delete app", err)
	}
	s.record(ctx, u, store.ActivityAppDelete, a.Name, "")
	return connect.NewResponse(&v1.DeleteAppResponse{}), nil
}

// removal counts what removeApp removed.
type removal struct{ versions, bundles, deps, logs int64 }

// removeApp deletes app a: its records first and its route second, so the
// edge cannot rebuild the route from the database once it is gone; the
// route's removal makes the edge release the runner. Then its logs, and
// the bundles and dependency archives no other version uses.
func (s *Service) removeApp(ctx context.Context, a *store.App) (removal, error) {
	hashes, err := s.cfg.Store.VersionHashes(ctx, a.ID)
	if err != nil {
		return removal{}, err
	}
	archives, err := s.cfg.Store.VersionDeps(ctx, a.ID)
	if err != nil {
		return removal{}, err
	}
	domains, err := s.cfg.Store.AppDomains(ctx, a.ID)
	if err != nil {
		return removal{}, err
	}
	if err := s.cfg.Store.DeleteApp(ctx, a.ID); err != nil {
		return removal{}, err
	}
	if err := s.cfg.Publisher.DeleteRoute(ctx, a.Name); err != nil {
		return removal{}, fmt.Errorf("delete route: %w", err)
	}
	for _, h := range domains {
		if err := s.cfg.Publisher.DeleteDomain(ctx, h); err != nil {
			return removal{}, fmt.Errorf("delete domain: %w", err)
		}
	}
	r := removal{versions: int64(len(hashes))}
	if err := s.cfg.Logs.Delete(ctx, a.ID); err != nil {
		s.cfg.Logger.Warn("delete app logs", "app", a.Name, "err", err)
	} else {
		r.logs = 1
	}
	r.bundles = s.dropBundles(ctx, hashes)
	if s.cfg.Deps != nil && len(archives) > 0 {
		if r.deps, err = s.cfg.Deps.Drop(ctx, archives); err != nil {
			s.cfg.Logger.Warn("delete unused dependency archives", "app", a.Name, "err", err)
		}
	}
	s.cfg.Logger.Info("app deleted", "app", a.Name)
	return r, nil
}

// GetLogs implements AppService.GetLogs.
func (s *Service) GetLogs(ctx context.Context, req *connect.Request[v1.GetLogsRequest]) (*connect.Response[v1.GetLogsResponse], error) {
	a, err := s.owned(ctx, req.Msg.GetIdOrName())
	if err != nil {
		return nil, err
	}
	n := int64(req.Msg.GetLimit())
	if n <= 0 || n > 10000 {
		n = 200
	}
	lines, err := s.cfg.Logs.Tail(ctx, a.ID, n)
	if err != nil {
		return nil, s.fail("get logs", err)
	}
	out := &v1.GetLogsResponse{}
	for _, l := range lines {
		out.Lines = append(out.Lines, &v1.LogLine{Time: timestamppb.New(l.Time), Stream: l.Stream, Text: l.Text})
	}
	return connect.NewResponse(out), nil
}

// ListColdStarts implements AppService.ListColdStarts.
func (s *Service) ListColdStarts(ctx context.Context, req *connect.Request[v1.ListColdStartsRequest]) (*connect.Response[v1.ListColdStartsResponse], error) {
	a, err := s.owned(ctx, req.Msg.GetIdOrName())
	if err != nil {
		return nil, err
	}
	n := int64(req.Msg.GetLimit())
	if n <= 0 || n > 100 {
		n = 20
	}
	cs, err := s.cfg.Logs.ColdStarts(ctx, a.ID, n)
	if err != nil {
		return nil, s.fail("list cold starts", err)
	}
	return connect.NewResponse(&v1.ListColdStartsResponse{ColdStarts: cs}), nil
}

func (s *Service) owned(ctx context.Context, idOrName string) (*store.App, error) {
	u, err := auth.User(ctx)
	if err != nil {
		return nil, err
	}
	if idOrName == "" {
		return nil, invalid("id_or_name is empty: name the app, or give its id")
	}
	a, err := s.cfg.Store.OwnedApp(ctx, u.ID, idOrName)
	if errors.Is(err, store.ErrNotFound) {
		return nil, noApp(idOrName)
	}
	if err != nil {
		return nil, s.fail("get app", err)
	}
	return a, nil
}

// noApp is NotFound for an app the caller does not have, by the name (or
// id) it gave: another user's app reads the same as one that does not exist.
func noApp(idOrName string) error {
	return connect.NewError(connect.CodeNotFound, fmt.Errorf("you have no app named %q: check the name (`gofastapi apps` lists yours)", idOrName))
}

// record appends to the activity feed; losing an entry must not fail the
// action, so a failure is only logged.
func (s *Service) record(ctx context.Context, u *store.User, kind, subject, detail string) {
	a := &store.Activity{ActorID: u.ID, Actor: u.Username, Kind: kind, Subject: subject, Detail: detail}
	if err := s.cfg.Store.RecordActivity(ctx, a); err != nil {
		s.cfg.Logger.Warn("record activity", "kind", kind, "err", err)
	}
}

// event appends a platform event to an app's log; a failure is only logged,
// since losing an event must not fail the operation that caused it.
func (s *Service) event(ctx context.Context, appID, format string, args ...any) {
	l := logstore.Line{Time: time.Now(), Stream: "platform", Text: fmt.Sprintf(format, args...)}
	if err := s.cfg.Logs.Append(ctx, appID, l); err != nil {
		s.cfg.Logger.Warn("append event", "app", appID, "err", err)
	}
}
