package mongousers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gofastapi/gofastapi/controlplane/dbfront"
	"github.com/gofastapi/gofastapi/controlplane/mongousers/mongotest"
)

func TestRoles(t *testing.T) {
	rw := func(dbs ...string) bson.A {
		a := bson.A{}
		for _, d := range dbs {
			a = append(a, bson.D{{Key: "role", Value: "readWrite"}, {Key: "db", Value: d}})
		}
		return a
	}
	tests := []struct {
		name string
		dbs  []string
		want bson.A
	}{
		{"none: an empty list, not null", nil, bson.A{}},
		{"one", []string{"alice_1a2b3c4d"}, rw("alice_1a2b3c4d")},
		{"several, in name order", []string{"alice_b", "alice_a", "alice_c"}, rw("alice_a", "alice_b", "alice_c")},
		{"duplicates once", []string{"alice_a", "alice_a"}, rw("alice_a")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, roles(tc.dbs)); diff != "" {
				t.Errorf("roles(%v) (-want +got):\n%s", tc.dbs, diff)
			}
		})
	}
	in := []string{"alice_b", "alice_a"}
	roles(in)
	if diff := cmp.Diff([]string{"alice_b", "alice_a"}, in); diff != "" {
		t.Errorf("roles changed its argument (-want +got):\n%s", diff)
	}
}

func TestUserCommand(t *testing.T) {
	a := &dbfront.Account{Username: "alice", Password: "pw", Databases: []string{"alice_a"}}
	got := userCommand("createUser", a)
	want := bson.D{
		{Key: "createUser", Value: "gofastapi.alice"},
		{Key: "pwd", Value: "pw"},
		{Key: "roles", Value: bson.A{bson.D{{Key: "role", Value: "readWrite"}, {Key: "db", Value: "alice_a"}}}},
		{Key: "mechanisms", Value: bson.A{"SCRAM-SHA-256"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("userCommand (-want +got):\n%s", diff)
	}
}

// accounts is a hand-written Accounts.
type accounts struct {
	mu   sync.Mutex
	m    map[string]*dbfront.Account
	fail map[string]bool // names whose lookup fails
}

func newAccounts(list ...*dbfront.Account) *accounts {
	a := &accounts{m: map[string]*dbfront.Account{}, fail: map[string]bool{}}
	for _, acc := range list {
		a.m[acc.Username] = acc
	}
	return a
}

func (a *accounts) Account(_ context.Context, name string) (*dbfront.Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail[name] {
		return nil, errors.New("store unavailable")
	}
	acc, ok := a.m[name]
	if !ok {
		return nil, dbfront.ErrNoAccount
	}
	c := *acc
	c.Databases = slices.Clone(acc.Databases)
	return &c, nil
}

func (a *accounts) Usernames(context.Context) ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	names := []string{}
	for n := range a.m {
		names = append(names, n)
	}
	for n := range a.fail {
		names = append(names, n)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

func (a *accounts) set(acc *dbfront.Account) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.m[acc.Username] = acc
}

func (a *accounts) setFailing(name string, fail bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fail[name] = fail
}

func (a *accounts) remove(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.m, name)
}

func connect(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	return c
}

// signIn returns the error, if any, of a ping as user with password on a
// fresh client of srv.
// signIn pings srv as the MongoDB user of the account named account.
func signIn(t *testing.T, srv *mongotest.Server, account, password string) error {
	t.Helper()
	return signInAs(t, srv, dbfront.UpstreamUser(account), password)
}

// signInAs pings srv as the MongoDB user named user.
func signInAs(t *testing.T, srv *mongotest.Server, user, password string) error {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(srv.URI(user, password)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return c.Ping(ctx, nil)
}

// newSync returns a Sync that manages srv's users through a RolesProxy,
// which plays MongoDB's roles, and logs to log.
func newSync(t *testing.T, srv *mongotest.Server, accts Accounts, log io.Writer) (*Sync, *mongo.Client, *mongotest.RolesProxy) {
	t.Helper()
	p := srv.StartRolesProxy(t)
	admin := connect(t, p.AdminURI())
	s, err := New(Config{Admin: admin, Accounts: accts,
		Timeout: 30 * time.Second, Logger: slog.New(slog.NewTextHandler(log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s, admin, p
}

// TestSyncUsers runs the sync against a server with real users (FerretDB
// with authentication; the roles are TestSyncRoles's).
func TestSyncUsers(t *testing.T) {
	srv := mongotest.Start(t)
	ctx := context.Background()
	accts := newAccounts(&dbfront.Account{Username: "alice", Password: "alice-pw-1", Databases: []string{"alice_a"}})
	s, admin, _ := newSync(t, srv, accts, io.Discard)

	if err := signIn(t, srv, "alice", "alice-pw-1"); err == nil {
		t.Fatal("alice signs in before any sync")
	}
	if err := s.Refresh(ctx, "alice"); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := signIn(t, srv, "alice", "alice-pw-1"); err != nil {
		t.Fatalf("alice after create: %v", err)
	}
	// A user that exists already is updated, whatever its password was.
	if err := s.Refresh(ctx, "alice"); err != nil {
		t.Fatalf("second refresh: %v", err)
	}
	if err := admin.Database("admin").RunCommand(ctx, bson.D{{Key: "createUser", Value: dbfront.UpstreamUser("bob")}, {Key: "pwd", Value: "stale"}, {Key: "roles", Value: bson.A{}}}).Err(); err != nil {
		t.Fatal(err)
	}
	accts.set(&dbfront.Account{Username: "bob", Password: "bob-pw", Databases: []string{"bob_b"}})
	if err := s.Refresh(ctx, "bob"); err != nil {
		t.Fatalf("refresh of a user with a stale password: %v", err)
	}
	if err := signIn(t, srv, "bob", "stale"); err == nil {
		t.Error("bob still signs in with the stale password")
	}
	if err := signIn(t, srv, "bob", "bob-pw"); err != nil {
		t.Errorf("bob with the account's password: %v", err)
	}

	// Rotation: the old password stops working, the new one works.
	accts.set(&dbfront.Account{Username: "alice", Password: "alice-pw-2", Databases: []string{"alice_a"}})
	if err := s.Refresh(ctx, "alice"); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if err := signIn(t, srv, "alice", "alice-pw-1"); err == nil {
		t.Error("alice signs in with the rotated-away password")
	}
	if err := signIn(t, srv, "alice", "alice-pw-2"); err != nil {
		t.Errorf("alice with the new password: %v", err)
	}

	// Removal drops the user; dropping one that is gone is fine.
	accts.remove("alice")
	if err := s.Refresh(ctx, "alice"); err != nil {
		t.Fatalf("drop: %v", err)
	}
	if err := signIn(t, srv, "alice", "alice-pw-2"); err == nil {
		t.Error("alice signs in after her account was removed")
	}
	if err := s.Refresh(ctx, "alice"); err != nil {
		t.Errorf("drop of a user that is gone: %v", err)
	}

	// An account named like the control plane's own user (or any other
	// user of the operator's) gets a user of its own: the operator's is
	// never touched.
	accts.set(&dbfront.Account{Username: mongotest.AdminUser, Password: "hijack", Databases: []string{"admin_x"}})
	if err := s.Refresh(ctx, mongotest.AdminUser); err != nil {
		t.Errorf("refresh of an account named like the admin user: %v", err)
	}
	if err := signInAs(t, srv, mongotest.AdminUser, srv.AdminPassword); err != nil {
		t.Errorf("admin after a platform account of its name: %v", err)
	}
	if err := signInAs(t, srv, mongotest.AdminUser, "hijack"); err == nil {
		t.Error("admin signs in with the platform account's password")
	}
	if err := signIn(t, srv, mongotest.AdminUser, "hijack"); err != nil {
		t.Errorf("the account named like the admin user: %v", err)
	}
}

// TestSyncAll is the start of the mode on an installation with accounts:
// each is created, and one that fails is counted and does not stop the
// others.
func TestSyncAll(t *testing.T) {
	srv := mongotest.Start(t)
	accts := newAccounts(
		&dbfront.Account{Username: "carol", Password: "carol-pw", Databases: []string{"carol_c"}},
		&dbfront.Account{Username: "dave", Password: "dave-pw", Databases: []string{"dave_d"}},
	)
	accts.setFailing("broken", true)
	var logs bytes.Buffer // SyncAll logs from the test's goroutine
	s, admin, _ := newSync(t, srv, accts, &logs)
	// The user of an account deleted while the mode was off goes; an
	// operator's user, whatever its name, stays.
	for _, u := range []string{dbfront.UpstreamUser("ghost"), "operator"} {
		if err := admin.Database("admin").RunCommand(context.Background(), bson.D{{Key: "createUser", Value: u}, {Key: "pwd", Value: "pw"}, {Key: "roles", Value: bson.A{}}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	failed, err := s.SyncAll(context.Background())
	if err != nil || failed != 1 {
		t.Fatalf("SyncAll = %d, %v; want 1 failure (broken), nil", failed, err)
	}
	if lines := strings.Split(strings.TrimSpace(logs.String()), "\n"); len(lines) != 1 ||
		!strings.Contains(lines[0], "level=ERROR") || !strings.Contains(lines[0], "user=broken") || !strings.Contains(lines[0], "store unavailable") {
		t.Errorf("log = %q, want one error line naming broken and why", logs.String())
	}
	for _, u := range []string{"carol", "dave"} {
		if err := signIn(t, srv, u, u+"-pw"); err != nil {
			t.Errorf("%s after SyncAll: %v", u, err)
		}
	}
	if err := signIn(t, srv, "ghost", "pw"); err == nil {
		t.Error("the user of a deleted account still signs in after SyncAll")
	}
	if err := signInAs(t, srv, "operator", "pw"); err != nil {
		t.Errorf("the operator's user after SyncAll: %v", err)
	}
}

// TestSyncRoles checks the roles the sync gives as databases come and go,
// as the RolesProxy in front of FerretDB (which has no roles) saw them.
func TestSyncRoles(t *testing.T) {
	srv := mongotest.Start(t)
	ctx := context.Background()
	accts := newAccounts(
		&dbfront.Account{Username: "alice", Password: "alice-pw", Databases: []string{"alice_a"}},
		&dbfront.Account{Username: "bob", Password: "bob-pw", Databases: []string{"bob_b"}},
	)
	s, _, p := newSync(t, srv, accts, io.Discard)
	if err := s.Refresh(ctx, "alice"); err != nil {
		t.Fatalf("first sync: %v", err)
	}
	accts.set(&dbfront.Account{Username: "alice", Password: "alice-pw", Databases: []string{"alice_c", "alice_a"}})
	if err := s.Refresh(ctx, "alice"); err != nil {
		t.Fatalf("after create database: %v", err)
	}
	accts.set(&dbfront.Account{Username: "alice", Password: "alice-pw", Databases: []string{"alice_c"}})
	if err := s.Refresh(ctx, "alice"); err != nil {
		t.Fatalf("after delete database: %v", err)
	}
	if err := signIn(t, srv, "alice", "alice-pw"); err != nil {
		t.Errorf("alice after the syncs (the proxy forwarded them): %v", err)
	}
	accts.remove("alice")
	if err := s.Refresh(ctx, "alice"); err != nil {
		t.Fatalf("after removal: %v", err)
	}
	want := []mongotest.UserCommand{
		{Verb: "updateUser", User: "gofastapi.alice", Roles: []string{"readWrite@alice_a"}}, // not found yet
		{Verb: "createUser", User: "gofastapi.alice", Roles: []string{"readWrite@alice_a"}},
		{Verb: "updateUser", User: "gofastapi.alice", Roles: []string{"readWrite@alice_a", "readWrite@alice_c"}},
		{Verb: "updateUser", User: "gofastapi.alice", Roles: []string{"readWrite@alice_c"}},
		{Verb: "dropUser", User: "gofastapi.alice"},
	}
	if diff := cmp.Diff(want, p.Commands()); diff != "" {
		t.Errorf("user commands sent (-want +got):\n%s", diff)
	}
}

// TestSyncRetry: an account whose sync failed is synced again by Retry
// until it succeeds, and only such accounts are.
func TestSyncRetry(t *testing.T) {
	srv := mongotest.Start(t)
	ctx := context.Background()
	accts := newAccounts(
		&dbfront.Account{Username: "erin", Password: "erin-pw", Databases: []string{"erin_e"}},
		&dbfront.Account{Username: "frank", Password: "frank-pw", Databases: []string{"frank_f"}},
	)
	s, _, p := newSync(t, srv, accts, io.Discard)
	if err := s.Refresh(ctx, "frank"); err != nil {
		t.Fatal(err)
	}
	accts.setFailing("erin", true)
	if err := s.Refresh(ctx, "erin"); err == nil {
		t.Fatal("refresh of an account whose lookup fails succeeded")
	}
	if failing, err := s.Retry(ctx); !slices.Equal(failing, []string{"erin"}) || err == nil {
		t.Fatalf("Retry while erin's lookup fails = %v, %v; want [erin] and its error", failing, err)
	}
	accts.setFailing("erin", false)
	before := len(p.Commands())
	if failing, err := s.Retry(ctx); len(failing) != 0 || err != nil {
		t.Fatalf("Retry once erin's lookup works = %v, %v; want none", failing, err)
	}
	if err := signIn(t, srv, "erin", "erin-pw"); err != nil {
		t.Errorf("erin after Retry: %v", err)
	}
	want := []mongotest.UserCommand{
		{Verb: "updateUser", User: "gofastapi.erin", Roles: []string{"readWrite@erin_e"}},
		{Verb: "createUser", User: "gofastapi.erin", Roles: []string{"readWrite@erin_e"}},
	}
	if diff := cmp.Diff(want, p.Commands()[before:]); diff != "" {
		t.Errorf("Retry sent (-want +got), only erin's sync:\n%s", diff)
	}
	before = len(p.Commands())
	if failing, err := s.Retry(ctx); len(failing) != 0 || err != nil || len(p.Commands()) != before {
		t.Errorf("Retry with nothing pending = %v, %v and %d commands; want nothing", failing, err, len(p.Commands())-before)
	}
}
