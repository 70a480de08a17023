package apps

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/controlplane/deps"
	"github.com/gofastapi/gofastapi/controlplane/embedded/embeddedtest"
	"github.com/gofastapi/gofastapi/controlplane/store"
)

// TestDepsKept: a deploy whose stored version names a dependency archive
// that another app's deletion freed meanwhile fails, saying to deploy
// again; one whose archive is kept goes on.
func TestDepsKept(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, embeddedtest.Mongo(t), "test")
	if err != nil {
		t.Fatal(err)
	}
	r, err := deps.New(deps.Config{Python: "python3", Store: st})
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{cfg: Config{Deps: r, Logger: slog.New(slog.DiscardHandler)}}

	kept, freed := strings.Repeat("a", 64), strings.Repeat("b", 64)
	if err := st.PutDependencySet(ctx, &store.DependencySet{Key: "k", Archive: kept}, []byte("archive")); err != nil {
		t.Fatal(err)
	}
	if err := s.depsKept(ctx, kept); err != nil {
		t.Errorf("a kept archive: %v", err)
	}
	err = s.depsKept(ctx, freed)
	if connect.CodeOf(err) != connect.CodeAborted || !strings.Contains(err.Error(), "deploy failed at the store stage") ||
		!strings.Contains(err.Error(), "deploy again, and they are installed anew") {
		t.Errorf("a freed archive: %v; want Aborted, saying to deploy again", err)
	}
}
