package mongousers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/gofastapi/gofastapi/controlplane/dbfront"
)

// Accounts is where the sync reads the platform's database accounts (the
// databases service).
type Accounts interface {
	dbfront.Accounts
	// Usernames returns the name of every account.
	Usernames(ctx context.Context) ([]string, error)
}

// Config configures a Sync.
type Config struct {
	// Admin is the control plane's own connection to MongoDB; its user
	// must be allowed to create, update and drop users.
	Admin    *mongo.Client
	Accounts Accounts
	// Timeout bounds the sync of one account at start (SyncAll).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Validate reports whether c is complete.
func (c Config) Validate() error {
	switch {
	case c.Admin == nil:
		return errors.New("mongousers: Config.Admin is nil")
	case c.Accounts == nil:
		return errors.New("mongousers: Config.Accounts is nil")
	case c.Timeout <= 0:
		return errors.New("mongousers: Config.Timeout must be positive")
	case c.Logger == nil:
		return errors.New("mongousers: Config.Logger is nil")
	}
	return nil
}

// Sync keeps MongoDB's users in step with the platform's database accounts.
type Sync struct {
	cfg Config
	// userMu serializes the syncs of one account: each reads the account
	// and then writes MongoDB, so without it a sync that read an older
	// password could write it after one that read the newer.
	userMu sync.Map // username -> *sync.Mutex

	// pending are the accounts whose last sync failed: Retry syncs them
	// again, so that MongoDB being away for a while does not leave their
	// apps locked out until the account next changes.
	pendingMu sync.Mutex
	pending   map[string]bool
}

// New returns a Sync.
func New(cfg Config) (*Sync, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Sync{cfg: cfg, pending: map[string]bool{}}, nil
}

// roles is the role list of a user whose databases have the given store
// names: readWrite on each of them, in name order, and nothing else.
func roles(storeNames []string) bson.A {
	names := slices.Sorted(slices.Values(storeNames))
	list := bson.A{}
	for _, n := range slices.Compact(names) {
		list = append(list, bson.D{{Key: "role", Value: "readWrite"}, {Key: "db", Value: n}})
	}
	return list
}

// Refresh makes username's MongoDB user match the platform's account of
// that name: created or updated with its password and roles, or dropped
// when there is no such account; an account whose sync fails is left to
// Retry. It implements databases.AccountWatcher.
func (s *Sync) Refresh(ctx context.Context, username string) error {
	m, _ := s.userMu.LoadOrStore(username, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	defer mu.Unlock()
	// Marked under mu, so the last sync to finish decides.
	err := s.sync(ctx, username)
	s.pendingMu.Lock()
	if err != nil {
		s.pending[username] = true
	} else {
		delete(s.pending, username)
	}
	s.pendingMu.Unlock()
	return err
}

// sync makes username's user match its account.
func (s *Sync) sync(ctx context.Context, username string) error {
	a, err := s.cfg.Accounts.Account(ctx, username)
	if errors.Is(err, dbfront.ErrNoAccount) {
		return s.drop(ctx, username)
	}
	if err != nil {
		return fmt.Errorf("mongousers: look up account %s: %w", username, err)
	}
	return s.put(ctx, a)
}

// put updates a's user, or creates it if MongoDB has none.
func (s *Sync) put(ctx context.Context, a *dbfront.Account) error {
	err := s.run(ctx, userCommand("updateUser", a))
	if hasCode(err, codeUserNotFound) {
		err = s.run(ctx, userCommand("createUser", a))
		if hasCode(err, codeUserAlreadyExists) {
			// Created meanwhile by another control plane: make it ours.
			err = s.run(ctx, userCommand("updateUser", a))
		}
	}
	if err != nil {
		return fmt.Errorf("mongousers: create or update user %s: %w", dbfront.UpstreamUser(a.Username), err)
	}
	return nil
}

// drop drops username's user; one that is not there is what drop wants.
func (s *Sync) drop(ctx context.Context, username string) error {
	name := dbfront.UpstreamUser(username)
	err := s.run(ctx, bson.D{{Key: "dropUser", Value: name}})
	if err != nil && !hasCode(err, codeUserNotFound) {
		return fmt.Errorf("mongousers: drop user %s: %w", name, err)
	}
	return nil
}

// userCommand is the createUser or updateUser command that gives a's user
// a's password and the roles of a's databases.
func userCommand(verb string, a *dbfront.Account) bson.D {
	return bson.D{
		{Key: verb, Value: dbfront.UpstreamUser(a.Username)},
		{Key: "pwd", Value: a.Password},
		{Key: "roles", Value: roles(a.Databases)},
		{Key: "mechanisms", Value: bson.A{"SCRAM-SHA-256"}},
	}
}

func (s *Sync) run(ctx context.Context, cmd bson.D) error {
	return s.cfg.Admin.Database("admin").RunCommand(ctx, cmd).Err()
}

func hasCode(err error, code int) bool {
	var se mongo.ServerError
	return errors.As(err, &se) && se.HasErrorCode(code)
}

// SyncAll refreshes every account, and drops the users of accounts that
// are gone (deleted while the mode was off), each within Config.Timeout,
// and logs each one that fails; it returns how many failed, or an error if
// the accounts or the users could not be listed.
func (s *Sync) SyncAll(ctx context.Context) (failed int, err error) {
	names, err := s.cfg.Accounts.Usernames(ctx)
	if err != nil {
		return 0, fmt.Errorf("mongousers: list accounts: %w", err)
	}
	stale, err := s.staleUsers(ctx, names)
	if err != nil {
		return 0, err
	}
	for _, n := range append(names, stale...) {
		uctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		err := s.Refresh(uctx, n)
		cancel()
		if err != nil {
			failed++
			s.cfg.Logger.Error("sync MongoDB user: the user's apps cannot sign in to MongoDB until it succeeds (Run retries it)", "user", n, "err", err)
		}
	}
	return failed, nil
}

// staleUsers returns the account names of the MongoDB users named with
// dbfront's prefix whose account is not among accounts.
func (s *Sync) staleUsers(ctx context.Context, accounts []string) ([]string, error) {
	var res struct {
		Users []struct {
			User string `bson:"user"`
		} `bson:"users"`
	}
	if err := s.cfg.Admin.Database("admin").RunCommand(ctx, bson.D{{Key: "usersInfo", Value: 1}}).Decode(&res); err != nil {
		return nil, fmt.Errorf("mongousers: list MongoDB users: %w", err)
	}
	var stale []string
	for _, u := range res.Users {
		if n, ok := dbfront.UpstreamAccount(u.User); ok && !slices.Contains(accounts, n) {
			stale = append(stale, n)
		}
	}
	return stale, nil
}

// Retry syncs again, each within Config.Timeout, every account whose last
// sync failed, and returns those that still fail with the first error.
func (s *Sync) Retry(ctx context.Context) (failing []string, first error) {
	s.pendingMu.Lock()
	names := make([]string, 0, len(s.pending))
	for n := range s.pending {
		names = append(names, n)
	}
	s.pendingMu.Unlock()
	slices.Sort(names)
	for _, n := range names {
		uctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		err := s.Refresh(uctx, n)
		cancel()
		if err != nil {
			failing = append(failing, n)
			if first == nil {
				first = err
			}
		}
	}
	return failing, first
}

// Run calls Retry every interval until ctx ends, and logs after each round
// the accounts still out of step.
func (s *Sync) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if failing, err := s.Retry(ctx); len(failing) > 0 && ctx.Err() == nil {
			s.cfg.Logger.Error("MongoDB users still out of step with their accounts: their apps cannot sign in to MongoDB; retrying", "users", len(failing), "first", failing[:min(len(failing), 10)], "err", err)
		}
	}
}
