package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gofastapi/gofastapi/controlplane/embedded/embeddedtest"
	"github.com/gofastapi/gofastapi/controlplane/store"
)

// open starts an embedded FerretDB (the store of the embedded default) and
// returns a Store over a fresh database, and a function that opens the same
// database again, as a restart does.
func open(t *testing.T) (*store.Store, func() *store.Store) {
	t.Helper()
	client := embeddedtest.Mongo(t)
	reopen := func() *store.Store {
		s, err := store.Open(context.Background(), client, "test")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return reopen(), reopen
}

func TestSimultaneousFirstSignups(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	users := make([]*store.User, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			users[i] = &store.User{Username: fmt.Sprintf("user%d", i), PasswordHash: "x"}
			errs[i] = s.CreateUser(ctx, users[i])
		})
	}
	wg.Wait()
	admins := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("CreateUser(%s): %v", users[i].Username, errs[i])
		}
		if users[i].Admin {
			admins++
		}
	}
	if admins != 1 {
		t.Errorf("%d of %d simultaneous first signups became admin, want exactly 1", admins, n)
	}
	if _, got, err := s.CountUsers(ctx); err != nil || got != 1 {
		t.Errorf("admins in the database = %d, %v; want 1", got, err)
	}
}

func TestSimultaneousSameUsername(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = s.CreateUser(ctx, &store.User{Username: "alice", PasswordHash: "x"}) })
	}
	wg.Wait()
	ok, dup := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, store.ErrDuplicate):
			dup++
		default:
			t.Errorf("CreateUser: %v, want nil or ErrDuplicate", err)
		}
	}
	if ok != 1 || dup != n-1 {
		t.Errorf("%d created, %d duplicates; want 1 and %d", ok, dup, n-1)
	}
	if users, _, _ := s.CountUsers(ctx); users != 1 {
		t.Errorf("%d users called alice exist, want 1", users)
	}
}

func TestLastAdmin(t *testing.T) {
	s, reopen := open(t)
	ctx := context.Background()
	alice := &store.User{Username: "alice", PasswordHash: "x"}
	bob := &store.User{Username: "bob", PasswordHash: "x"}
	for _, u := range []*store.User{alice, bob} {
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if changed, err := s.SetAdmin(ctx, bob.ID, true); !changed || err != nil {
		t.Fatalf("promote bob = %v, %v", changed, err)
	}
	if changed, err := s.SetAdmin(ctx, bob.ID, true); changed || err != nil {
		t.Errorf("promote bob again = %v, %v; want no change", changed, err)
	}

	// Two admins demote each other at once: exactly one may succeed.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, id := range []string{alice.ID, bob.ID} {
		wg.Go(func() { _, errs[i] = s.SetAdmin(ctx, id, false) })
	}
	wg.Wait()
	failed := 0
	for _, err := range errs {
		if errors.Is(err, store.ErrLastAdmin) {
			failed++
		} else if err != nil {
			t.Fatalf("SetAdmin: %v", err)
		}
	}
	_, admins, _ := s.CountUsers(ctx)
	if failed != 1 || admins != 1 {
		t.Fatalf("simultaneous demotions: %d refused, %d admins left; want 1 and 1", failed, admins)
	}
	last := alice
	if errs[0] == nil {
		last = bob
	}
	if _, err := s.SetAdmin(ctx, last.ID, false); !errors.Is(err, store.ErrLastAdmin) {
		t.Errorf("demote the last admin: %v, want ErrLastAdmin", err)
	}
	if err := s.DeleteUser(ctx, last.ID); !errors.Is(err, store.ErrLastAdmin) {
		t.Errorf("delete the last admin: %v, want ErrLastAdmin", err)
	}

	// A restart recounts the admins; the count still guards.
	s = reopen()
	if _, err := s.SetAdmin(ctx, last.ID, false); !errors.Is(err, store.ErrLastAdmin) {
		t.Errorf("after reopening, demote the last admin: %v, want ErrLastAdmin", err)
	}
	carol := &store.User{Username: "carol", PasswordHash: "x"}
	if err := s.CreateUser(ctx, carol); err != nil || carol.Admin {
		t.Fatalf("a later signup: %v, admin %v; want a plain user", err, carol.Admin)
	}
	s.SetAdmin(ctx, carol.ID, true)
	if err := s.DeleteUser(ctx, last.ID); err != nil {
		t.Errorf("delete an admin while another remains: %v", err)
	}
	if _, err := s.UserByID(ctx, last.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted user still found: %v", err)
	}
}

func TestSessions(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	u := &store.User{Username: "alice", PasswordHash: "x"}
	s.CreateUser(ctx, u)
	for _, id := range []string{"a", "b", "c"} {
		if err := s.CreateSession(ctx, &store.Session{ID: id, UserID: u.ID, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	s.CreateSession(ctx, &store.Session{ID: "old", UserID: u.ID, ExpiresAt: time.Now().Add(-time.Second)})
	s.CreateSession(ctx, &store.Session{ID: "other", UserID: "someone-else", ExpiresAt: time.Now().Add(time.Hour)})

	ids := func() []string {
		ss, err := s.ListSessions(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, x := range ss {
			out = append(out, x.ID)
		}
		return out
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, slices.Sorted(slices.Values(ids()))); diff != "" {
		t.Errorf("ListSessions (-want +got):\n%s", diff)
	}
	if err := s.DeleteUserSession(ctx, u.ID, "other"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoke another user's session: %v, want ErrNotFound", err)
	}
	if n, err := s.DeleteUserSessions(ctx, u.ID, "b"); n != 2 || err != nil {
		t.Errorf("revoke all but b = %d, %v; want 2", n, err)
	}
	if diff := cmp.Diff([]string{"b"}, ids()); diff != "" {
		t.Errorf("after revoking the others (-want +got):\n%s", diff)
	}
	if _, err := s.Session(ctx, "other"); err != nil {
		t.Errorf("another user's session was revoked: %v", err)
	}
}

func TestSettings(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	get := func() *store.Settings {
		st, err := s.Settings(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if diff := cmp.Diff(&store.Settings{PublicSignups: true}, get()); diff != "" {
		t.Errorf("fresh settings (-want +got):\n%s", diff)
	}
	s.SetPublicSignups(ctx, false)
	s.SetAllowedImports(ctx, []string{"fastapi", "numpy"})
	if diff := cmp.Diff(&store.Settings{AllowedImports: []string{"fastapi", "numpy"}}, get()); diff != "" {
		t.Errorf("after changes (-want +got):\n%s", diff)
	}
	s.SetAllowedImports(ctx, nil)
	s.SetPublicSignups(ctx, true)
	if diff := cmp.Diff(&store.Settings{PublicSignups: true}, get()); diff != "" {
		t.Errorf("after reset (-want +got):\n%s", diff)
	}
}

func TestActivity(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	u := &store.User{Username: "alice", PasswordHash: "x"}
	s.CreateUser(ctx, u)
	for _, k := range []string{"first", "second", "third"} {
		if err := s.RecordActivity(ctx, &store.Activity{ActorID: u.ID, Actor: "alice", Kind: k}); err != nil {
			t.Fatal(err)
		}
	}
	s.RecordActivity(ctx, &store.Activity{ActorID: "admin-id", Actor: "root", Kind: store.ActivityUserDelete, Subject: "alice"})
	as, err := s.ListActivity(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, a := range as {
		kinds = append(kinds, a.Kind)
	}
	if diff := cmp.Diff([]string{store.ActivityUserDelete, "third", "second"}, kinds); diff != "" {
		t.Errorf("ListActivity, newest first (-want +got):\n%s", diff)
	}
	if got, _ := s.UserByID(ctx, u.ID); got.LastActiveAt.IsZero() {
		t.Error("recording activity did not mark the actor active")
	}
	if n, err := s.DeleteActivityOf(ctx, u.ID); n != 3 || err != nil {
		t.Errorf("DeleteActivityOf = %d, %v; want 3", n, err)
	}
	if as, _ := s.ListActivity(ctx, 10); len(as) != 1 || as[0].Actor != "root" {
		t.Errorf("after deleting alice's entries: %+v, want only root's", as)
	}
}

func TestLimits(t *testing.T) {
	free, _ := store.TierLimits(store.TierFree)
	custom := store.Limits{Tier: store.TierCustom, Apps: 3}
	tests := []struct {
		name    string
		user    store.User
		want    store.Limits
		appsMax int
	}{
		{name: "default tier", user: store.User{}, want: free, appsMax: free.Apps},
		{name: "own limits", user: store.User{Limits: &custom}, want: custom, appsMax: 3},
		{name: "admins are not limited", user: store.User{Admin: true, Limits: &custom}, want: custom, appsMax: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.user.EffectiveLimits()); diff != "" {
				t.Errorf("EffectiveLimits (-want +got):\n%s", diff)
			}
			if got := tt.user.AppLimit(); got != tt.appsMax {
				t.Errorf("AppLimit = %d, want %d", got, tt.appsMax)
			}
		})
	}
}
