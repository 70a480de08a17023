package dbfront

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/xdg-go/scram"
)

// Account is what the front knows of one user of the platform database.
type Account struct {
	// Username is the name the user authenticates with.
	Username string
	// Password is the user's current database password, in the clear: the
	// front derives the SCRAM keys from it and never stores it elsewhere.
	Password string
	// Databases are the names, inside the store, of the user's databases.
	Databases []string
	// QuotaBytes caps the storage of all the user's databases; 0 means no
	// quota.
	QuotaBytes int64
}

// Accounts looks up the platform's database users.
type Accounts interface {
	// Account returns the account named username, or ErrNoAccount.
	Account(ctx context.Context, username string) (*Account, error)
}

// Sizer measures how much storage databases take.
type Sizer interface {
	// Size returns the bytes the named databases take in the store.
	Size(ctx context.Context, dbs []string) (int64, error)
}

// Config configures a Front.
type Config struct {
	// Dial opens a connection to the store.
	Dial     func(ctx context.Context) (net.Conn, error)
	Accounts Accounts
	Sizer    Sizer
	// QueryTimeout bounds every command: maxTimeMS is set or clamped to it
	// where the store honours it, and a command the store has not answered
	// shortly after it is stopped.
	QueryTimeout time.Duration
	// MaxConnsPerUser is the most authenticated connections one user may
	// have open at once.
	MaxConnsPerUser int
	// SignInUpstream makes every store connection of an authenticated
	// client sign in to the store as the client's account (SCRAM-SHA-256,
	// its username and password, in the admin database) before the front
	// forwards anything of the client's. It is for a store with users of
	// its own that mirror the accounts (MongoDB, kept in step by package
	// mongousers): the store's roles then check each command again, behind
	// the front's checks. A store that refuses the user fails the client's
	// authentication with a message that says so.
	SignInUpstream bool
	// MaxPending is the most connections that may be open and not yet
	// authenticated, across all clients.
	MaxPending int
	Logger     *slog.Logger
}

// Validate reports whether c is complete.
func (c Config) Validate() error {
	switch {
	case c.Dial == nil:
		return errors.New("dbfront: Config.Dial is nil")
	case c.Accounts == nil:
		return errors.New("dbfront: Config.Accounts is nil")
	case c.Sizer == nil:
		return errors.New("dbfront: Config.Sizer is nil")
	case c.QueryTimeout <= 0:
		return errors.New("dbfront: Config.QueryTimeout must be positive")
	case c.MaxConnsPerUser < 1:
		return errors.New("dbfront: Config.MaxConnsPerUser must be at least 1")
	case c.MaxPending < 1:
		return errors.New("dbfront: Config.MaxPending must be at least 1")
	case c.Logger == nil:
		return errors.New("dbfront: Config.Logger is nil")
	}
	return nil
}

// Front serves MongoDB's wire protocol to apps and forwards what each
// caller may do to the store.
type Front struct {
	cfg Config

	mu      sync.Mutex
	users   map[string]*user // by username, while the user has connections
	conns   map[*conn]struct{}
	pending int
	closed  bool
	wg      sync.WaitGroup
	creds   credCache
}

// user is the shared state of one user's connections.
type user struct {
	name     string
	password string
	dbs      map[string]bool
	quota    int64
	conns    map[*conn]struct{}
	usage    usage
	// upstream signs the user's store connections in (SignInUpstream). One
	// per user, because it keeps the keys derived from the password, which
	// cost thousands of hash rounds per connection otherwise.
	upstream *scram.Client
}

// New returns a Front; Serve starts it.
func New(cfg Config) (*Front, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Front{cfg: cfg, users: map[string]*user{}, conns: map[*conn]struct{}{}}, nil
}

// Serve accepts connections from l until Close.
func (f *Front) Serve(l net.Listener) error {
	for {
		nc, err := l.Accept()
		if err != nil {
			f.mu.Lock()
			closed := f.closed
			f.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		c := &conn{f: f, client: nc, cursors: map[int64]bool{}}
		f.mu.Lock()
		if f.closed || f.pending >= f.cfg.MaxPending {
			f.mu.Unlock()
			nc.Close()
			continue
		}
		f.pending++
		f.conns[c] = struct{}{}
		f.wg.Add(1)
		f.mu.Unlock()
		go func() {
			defer f.wg.Done()
			c.serve()
		}()
	}
}

// Close closes every connection and waits for them to end. The caller
// closes the listener.
func (f *Front) Close() {
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		c.client.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// Refresh reloads the account named username: a change of its databases or
// quota applies to its open connections at their next command; a changed
// password or a removed account closes them.
func (f *Front) Refresh(ctx context.Context, username string) error {
	a, err := f.cfg.Accounts.Account(ctx, username)
	if err != nil && !errors.Is(err, ErrNoAccount) {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.users[username]
	if u == nil {
		return nil
	}
	if a == nil || a.Password != u.password {
		for c := range u.conns {
			c.client.Close()
		}
		delete(f.users, username)
		return nil
	}
	u.dbs, u.quota = dbSet(a.Databases), a.QuotaBytes
	u.usage.dirty = true
	return nil
}

// Connections returns how many authenticated connections username has.
func (f *Front) Connections(username string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u := f.users[username]; u != nil {
		return len(u.conns)
	}
	return 0
}

func dbSet(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// admit attaches an authenticated connection to its user, within the
// user's connection limit.
func (f *Front) admit(c *conn, a *Account) (*user, *cmdError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.users[a.Username]
	if u == nil || u.password != a.Password {
		if u != nil {
			for old := range u.conns {
				old.client.Close()
			}
		}
		u = &user{name: a.Username, password: a.Password, conns: map[*conn]struct{}{}}
		u.usage.dirty = true
		f.users[a.Username] = u
	}
	u.dbs, u.quota = dbSet(a.Databases), a.QuotaBytes
	if len(u.conns) >= f.cfg.MaxConnsPerUser {
		return nil, &cmdError{code: codeExceededConnLimit, name: "ExceededConnectionLimit",
			msg: fmt.Sprintf("connection limit reached: %s already has %d connections open to the platform database (limit %d); close unused clients or use one MongoClient per process", a.Username, len(u.conns), f.cfg.MaxConnsPerUser)}
	}
	u.conns[c] = struct{}{}
	f.pending--
	return u, nil
}

// drop forgets a closed connection.
func (f *Front) drop(c *conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.conns, c)
	if c.user == nil {
		f.pending--
		return
	}
	delete(c.user.conns, c)
	if len(c.user.conns) == 0 && f.users[c.user.name] == c.user {
		delete(f.users, c.user.name)
	}
}

// UpstreamUser is the name, in the store, of the user that the account
// named username signs in as (Config.SignInUpstream; package mongousers
// keeps these users). The prefix keeps accounts out of the store's other
// users: platform usernames have no dot, so no account can take the name
// of an operator's user, and an operator's user is never an account's
// unless it is named with the prefix.
func UpstreamUser(username string) string { return upstreamPrefix + username }

// UpstreamAccount is the inverse of UpstreamUser: the account name of the
// store user named user, and whether user is an account's at all.
func UpstreamAccount(user string) (username string, ok bool) {
	return strings.CutPrefix(user, upstreamPrefix)
}

const upstreamPrefix = "gofastapi."

// upstreamClient returns the SCRAM client that signs u's store
// connections in.
func (f *Front) upstreamClient(u *user) (*scram.Client, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u.upstream == nil {
		cl, err := scram.SHA256.NewClient(UpstreamUser(u.name), u.password, "")
		if err != nil {
			return nil, err
		}
		u.upstream = cl
	}
	return u.upstream, nil
}

// own reports whether db is one of u's databases now.
func (f *Front) own(u *user, db string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return u.dbs[db]
}
