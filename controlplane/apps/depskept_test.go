package apps

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/controlplane/deps"
	"github.com/gofastapi/gofastapi/controlplane/deps/depstest"
	"github.com/gofastapi/gofastapi/controlplane/embedded/embeddedtest"
	"github.com/gofastapi/gofastapi/controlplane/publish"
	"github.com/gofastapi/gofastapi/controlplane/store"
	"github.com/gofastapi/gofastapi/proto/bundle"
)

// losingDeps is a real Resolver whose Kept says no each time, as if a
// deletion freed the archive at every attempt.
type losingDeps struct{ *deps.Resolver }

func (losingDeps) Kept(context.Context, string) (bool, error) { return false, nil }

// TestKeepDeps: a deploy whose stored version names a dependency archive
// that another app's deletion freed meanwhile installs the dependencies
// again and stores the version naming them; one that loses that race at
// every attempt fails, saying to deploy again.
func TestKeepDeps(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, embeddedtest.Mongo(t), "test")
	if err != nil {
		t.Fatal(err)
	}
	_, rdb := embeddedtest.Redis(t)
	idx := depstest.StartIndex(t, depstest.Wheel{Name: "greet", Version: "1.0", Files: map[string]string{"greet/__init__.py": "def hello(): return 'hi'\n"}})
	r, err := deps.New(deps.Config{Python: "python3", Index: idx.URL, Store: st, Publisher: publish.New(rdb), TempDir: t.TempDir(),
		Allowed: func(context.Context) ([]string, error) { return []string{"greet"}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	files := []bundle.File{{Name: "app.py", Content: []byte("app = None\n")}, {Name: deps.File, Content: []byte("greet==1.0\n")}}
	set, problems, err := r.Resolve(ctx, files)
	if err != nil || len(problems) > 0 || set == nil {
		t.Fatalf("resolve: %v, %v, %v", set, problems, err)
	}
	// The last other app using the archive is deleted as the version is
	// stored: the archive goes, and then the version naming it is stored.
	if n, err := r.Drop(ctx, []string{set.Archive}); err != nil || n != 1 {
		t.Fatalf("drop = %d, %v; want 1", n, err)
	}
	v := &store.Version{AppID: "app1", Hash: bundle.Hash(files), Entrypoint: "app.py", Files: store.VersionFiles(files), Deps: set.Archive, Packages: set.Packages}
	if err := st.PutVersion(ctx, v); err != nil {
		t.Fatal(err)
	}

	s := &Service{cfg: Config{Deps: r, Store: st, Logger: slog.New(slog.DiscardHandler)}}
	if err := s.keepDeps(ctx, files, v); err != nil {
		t.Fatalf("keepDeps after the archive was freed: %v", err)
	}
	stored, err := st.Version(ctx, "app1", v.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Deps != v.Deps {
		t.Errorf("the stored version names archive %s, the deploy %s", stored.Deps, v.Deps)
	}
	if kept, err := r.Kept(ctx, stored.Deps); err != nil || !kept {
		t.Errorf("the stored version's archive %s: kept %v, %v; want it installed again", stored.Deps, kept, err)
	}
	if len(stored.Packages) != 1 || stored.Packages[0].Name != "greet" {
		t.Errorf("the stored version's packages: %v", stored.Packages)
	}

	s.cfg.Deps = losingDeps{r}
	err = s.keepDeps(ctx, files, v)
	if connect.CodeOf(err) != connect.CodeAborted || !strings.Contains(err.Error(), "deploy failed at the store stage") ||
		!strings.Contains(err.Error(), "3 times in a row") || !strings.Contains(err.Error(), "deploy again") {
		t.Errorf("freed at every attempt: %v; want Aborted, saying to deploy again", err)
	}
}
