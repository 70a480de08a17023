package store_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gofastapi/gofastapi/controlplane/store"
)

func TestDBAccountUsernames(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	if err := s.EnsureDatabaseIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	names, err := s.DBAccountUsernames(ctx)
	if err != nil || len(names) != 0 {
		t.Fatalf("no accounts: %v, %v; want none", names, err)
	}
	for owner, u := range map[string]string{"u1": "carol", "u2": "alice", "u3": "bob"} {
		if err := s.PutDBAccount(ctx, &store.DBAccount{OwnerID: owner, Username: u, Password: []byte("sealed")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.DeleteDatabaseRecordsOf(ctx, "u3"); err != nil { // bob's
		t.Fatal(err)
	}
	names, err = s.DBAccountUsernames(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"alice", "carol"}, names); diff != "" {
		t.Errorf("DBAccountUsernames (-want +got):\n%s", diff)
	}
}
