package databases

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/gofastapi/gofastapi/controlplane/dbfront"
	"github.com/gofastapi/gofastapi/controlplane/store"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

// Store is the platform data the service needs.
type Store interface {
	UserByID(ctx context.Context, id string) (*store.User, error)
	UserByName(ctx context.Context, username string) (*store.User, error)
	OwnedApp(ctx context.Context, ownerID, idOrName string) (*store.App, error)
	ListApps(ctx context.Context, ownerID string) ([]*store.App, error)
	CreateDatabase(ctx context.Context, d *store.Database) error
	ListDatabases(ctx context.Context, ownerID string) ([]*store.Database, error)
	OwnedDatabase(ctx context.Context, ownerID, idOrName string) (*store.Database, error)
	RenameDatabase(ctx context.Context, ownerID, id, name string) error
	SetDefaultDatabase(ctx context.Context, ownerID, id string) error
	DeleteDatabase(ctx context.Context, id string) error
	DBAccount(ctx context.Context, ownerID string) (*store.DBAccount, error)
	DBAccountByUsername(ctx context.Context, username string) (*store.DBAccount, error)
	DBAccountUsernames(ctx context.Context) ([]string, error)
	PutDBAccount(ctx context.Context, a *store.DBAccount) error
	SetViewerHash(ctx context.Context, ownerID string, hash []byte) error
	SetAppDatabase(ctx context.Context, ownerID, appID, dbID string) error
	AppDatabaseID(ctx context.Context, appID string) (string, error)
	AppDatabaseChoices(ctx context.Context, ownerID string) (map[string]string, error)
	DeleteDatabaseRecordsOf(ctx context.Context, ownerID string) (int64, error)
	DatabaseStoreNames(ctx context.Context) ([]string, error)
}

// Sealer encrypts credentials at rest (package secretbox).
type Sealer interface {
	Seal(plaintext []byte, label string) ([]byte, error)
	Open(sealed []byte, label string) ([]byte, error)
}

// AppRestarter restarts apps so that they start with a fresh environment
// on their next request (the apps service).
type AppRestarter interface {
	RestartApps(ctx context.Context, appIDs ...string) error
}

// AccountWatcher is told when a user's database account changes: its
// password, its databases, its quota, or its removal. The wire front
// (package dbfront) and the MongoDB user sync (package mongousers) are the
// watchers; each looks the account up again (Account) when told.
type AccountWatcher interface {
	Refresh(ctx context.Context, username string) error
}

// Config configures a Service.
type Config struct {
	Store Store
	// Data is the platform's own connection to the store that holds the
	// users' databases.
	Data  *mongo.Client
	Sizer dbfront.Sizer
	Key   Sealer
	// QueryTimeout bounds each query of the data browser and the viewer,
	// as the front bounds apps' queries.
	QueryTimeout time.Duration
	// MongoAddr is the host:port apps reach the front (or MongoDB) at.
	MongoAddr string
	// ViewerURL returns the data viewer's address for a username.
	ViewerURL func(username string) string
	Logger    *slog.Logger
}

// Validate reports whether c is complete.
func (c Config) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("databases: Config.Store is nil")
	case c.Data == nil:
		return errors.New("databases: Config.Data is nil")
	case c.Sizer == nil:
		return errors.New("databases: Config.Sizer is nil")
	case c.Key == nil:
		return errors.New("databases: Config.Key is nil")
	case c.QueryTimeout <= 0:
		return errors.New("databases: Config.QueryTimeout must be positive")
	case c.MongoAddr == "":
		return errors.New("databases: Config.MongoAddr is empty")
	case c.ViewerURL == nil:
		return errors.New("databases: Config.ViewerURL is nil")
	case c.Logger == nil:
		return errors.New("databases: Config.Logger is nil")
	}
	return nil
}

// Service implements gofastapiv1connect.DatabaseServiceHandler,
// dbfront.Accounts and mongousers.Accounts, the apps service's PlatformEnv
// and admin.UserData.
type Service struct {
	cfg      Config
	apps     atomic.Pointer[AppRestarter]
	watchers atomic.Pointer[[]AccountWatcher]

	// ownerMu serializes changes to one owner's set of databases, so that
	// two first uses at once create one default database, and a create and
	// a delete cannot both pass the limit checks.
	ownerMu sync.Map // owner id -> *sync.Mutex
}

var (
	_ gofastapiv1connect.DatabaseServiceHandler = (*Service)(nil)
	_ dbfront.Accounts                          = (*Service)(nil)
)

// NewService returns a Service.
func NewService(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Service{cfg: cfg}, nil
}

// SetApps tells the service how to restart apps after a change of their
// database or credentials. The apps service is made after this one, since
// it asks this one for PLATFORM_MONGO_URI; until SetApps, apps keep running
// until they restart for another reason.
func (s *Service) SetApps(a AppRestarter) { s.apps.Store(&a) }

// SetWatchers sets whom to tell of account changes, told in this order,
// each whether the one before failed; the watchers are made after this
// service, which is their Accounts. Order matters when one watcher's state
// depends on another's: the MongoDB user sync goes before the front, so
// that a connection the front accepts with a new password can sign in to
// MongoDB with it.
func (s *Service) SetWatchers(ws ...AccountWatcher) { s.watchers.Store(&ws) }

func (s *Service) lock(ownerID string) func() {
	m, _ := s.ownerMu.LoadOrStore(ownerID, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// caller returns the signed-in user.

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`)

func checkName(name string) error {
	if !nameRE.MatchString(name) {
		return invalid("database name %q: use 1 to 40 lowercase letters, digits and dashes, not starting or ending with a dash", name)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func newPassword() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ensure provisions u on first use: credentials and a default database.
func (s *Service) ensure(ctx context.Context, u *store.User) ([]*store.Database, error) {
	dbs, err := s.cfg.Store.ListDatabases(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	if len(dbs) > 0 {
		if _, err := s.cfg.Store.DBAccount(ctx, u.ID); err == nil {
			return dbs, nil
		}
	}
	defer s.lock(u.ID)()
	created := false
	if _, err := s.cfg.Store.DBAccount(ctx, u.ID); errors.Is(err, store.ErrNotFound) {
		a := &store.DBAccount{OwnerID: u.ID, Username: u.Username}
		if a.Password, err = s.cfg.Key.Seal([]byte(newPassword()), sealLabel(u.ID)); err != nil {
			return nil, err
		}
		if err := s.cfg.Store.PutDBAccount(ctx, a); err != nil {
			return nil, fmt.Errorf("create database account: %w", err)
		}
		created = true
	} else if err != nil {
		return nil, err
	}
	if dbs, err = s.cfg.Store.ListDatabases(ctx, u.ID); err != nil || len(dbs) > 0 {
		if err == nil && created {
			// Databases without an account (its record was lost): the
			// watchers learn of the new account here, as below.
			s.refresh(ctx, u.Username)
		}
		return dbs, err
	}
	d := &store.Database{OwnerID: u.ID, Name: "default", StoreName: u.Username + "_" + randomHex(4), Default: true}
	if err := s.cfg.Store.CreateDatabase(ctx, d); err != nil {
		return nil, fmt.Errorf("create first database: %w", err)
	}
	s.refresh(ctx, u.Username)
	s.cfg.Logger.Info("provisioned platform database", "user", u.Username, "store_name", d.StoreName)
	return []*store.Database{d}, nil
}

// refreshTimeout bounds telling the watchers of one change.
const refreshTimeout = 30 * time.Second

// refresh tells the watchers that username's account changed. A failure is
// logged, not returned: the change is stored, and a watcher that missed it
// catches up at its next refresh or start.
func (s *Service) refresh(ctx context.Context, username string) {
	ws := s.watchers.Load()
	if ws == nil {
		return
	}
	// The change is stored: a caller that goes away must not leave a
	// watcher (MongoDB's users) behind it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
	defer cancel()
	for _, w := range *ws {
		if err := w.Refresh(ctx, username); err != nil {
			s.cfg.Logger.Warn("refresh database account", "user", username, "watcher", fmt.Sprintf("%T", w), "err", err)
		}
	}
}

// restart restarts apps; failing to is logged, not fatal: the change is
// stored and the apps pick it up when they next start.
func (s *Service) restart(ctx context.Context, appIDs []string) {
	a := s.apps.Load()
	if a == nil || len(appIDs) == 0 {
		return
	}
	if err := (*a).RestartApps(ctx, appIDs...); err != nil {
		s.cfg.Logger.Warn("restart apps", "apps", appIDs, "err", err)
	}
}

// sealLabel binds a sealed database password to its owner.
func sealLabel(ownerID string) string { return "db-password:" + ownerID }

// password opens ownerID's database password.
func (s *Service) password(a *store.DBAccount) (string, error) {
	p, err := s.cfg.Key.Open(a.Password, sealLabel(a.OwnerID))
	if err != nil {
		return "", fmt.Errorf("open database password of %s: %w", a.Username, err)
	}
	return string(p), nil
}

// Account implements dbfront.Accounts.
func (s *Service) Account(ctx context.Context, username string) (*dbfront.Account, error) {
	a, err := s.cfg.Store.DBAccountByUsername(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		return nil, dbfront.ErrNoAccount
	} else if err != nil {
		return nil, err
	}
	u, err := s.cfg.Store.UserByID(ctx, a.OwnerID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.Deleting) {
		return nil, dbfront.ErrNoAccount
	} else if err != nil {
		return nil, err
	}
	pw, err := s.password(a)
	if err != nil {
		return nil, err
	}
	dbs, err := s.cfg.Store.ListDatabases(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	acc := &dbfront.Account{Username: a.Username, Password: pw, QuotaBytes: u.EffectiveLimits().StorageBytes}
	for _, d := range dbs {
		acc.Databases = append(acc.Databases, d.StoreName)
	}
	return acc, nil
}

// Usernames returns the name of every database account, for a watcher
// that catches up with all of them at start.
func (s *Service) Usernames(ctx context.Context) ([]string, error) {
	return s.cfg.Store.DBAccountUsernames(ctx)
}

// EnvMongoURI is the variable apps find their database in.
const EnvMongoURI = "PLATFORM_MONGO_URI"

// AppEnv returns PLATFORM_MONGO_URI for app: the owner's credentials and
// the app's database, provisioning the owner on first use. It is the apps
// service's PlatformEnv.
func (s *Service) AppEnv(ctx context.Context, app *store.App) (map[string]string, error) {
	u, err := s.cfg.Store.UserByID(ctx, app.OwnerID)
	if err != nil {
		return nil, fmt.Errorf("owner of %s: %w", app.Name, err)
	}
	dbs, err := s.ensure(ctx, u)
	if err != nil {
		return nil, err
	}
	a, err := s.cfg.Store.DBAccount(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	pw, err := s.password(a)
	if err != nil {
		return nil, err
	}
	chosen, err := s.cfg.Store.AppDatabaseID(ctx, app.ID)
	if err != nil {
		return nil, err
	}
	db := pick(dbs, chosen)
	return map[string]string{EnvMongoURI: s.uri(a.Username, pw, db.StoreName)}, nil
}

// pick returns the database with id chosen, else the default, else the
// first.
func pick(dbs []*store.Database, chosen string) *store.Database {
	var def *store.Database
	for _, d := range dbs {
		if chosen != "" && d.ID == chosen {
			return d
		}
		if d.Default {
			def = d
		}
	}
	if def == nil {
		def = dbs[0]
	}
	return def
}

// uri is the connection string of user with password on database db. The
// pool size keeps one app process inside the front's connection limit.
func (s *Service) uri(user, password, db string) string {
	u := url.URL{Scheme: "mongodb", User: url.UserPassword(user, password), Host: s.cfg.MongoAddr, Path: "/" + db,
		RawQuery: "authSource=admin&authMechanism=SCRAM-SHA-256&maxPoolSize=10"}
	return u.String()
}

// appsOf returns ownerID's apps with the database each uses.
func (s *Service) appsOf(ctx context.Context, ownerID string, dbs []*store.Database) (map[string][]*store.App, error) {
	apps, err := s.cfg.Store.ListApps(ctx, ownerID)
	if err != nil {
		return nil, err
	}
	choices, err := s.cfg.Store.AppDatabaseChoices(ctx, ownerID)
	if err != nil {
		return nil, err
	}
	out := map[string][]*store.App{}
	if len(dbs) == 0 {
		return out, nil
	}
	for _, a := range apps {
		d := pick(dbs, choices[a.ID])
		out[d.ID] = append(out[d.ID], a)
	}
	return out, nil
}

// DeleteUserData drops every database of userID with its data, and its
// credentials and app choices. It implements admin.UserData.
func (s *Service) DeleteUserData(ctx context.Context, userID string) (map[string]int64, error) {
	dbs, err := s.cfg.Store.ListDatabases(ctx, userID)
	if err != nil {
		return nil, err
	}
	for _, d := range dbs {
		if err := s.cfg.Data.Database(d.StoreName).Drop(ctx); err != nil {
			return nil, fmt.Errorf("drop database %s: %w", d.StoreName, err)
		}
	}
	a, _ := s.cfg.Store.DBAccount(ctx, userID)
	n, err := s.cfg.Store.DeleteDatabaseRecordsOf(ctx, userID)
	if err != nil {
		return nil, err
	}
	if a != nil {
		s.refresh(ctx, a.Username)
	}
	return map[string]int64{"databases": n}, nil
}
