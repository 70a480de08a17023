package deps

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gofastapi/gofastapi/controlplane/deps/depstest"
	"github.com/gofastapi/gofastapi/controlplane/embedded/embeddedtest"
	"github.com/gofastapi/gofastapi/controlplane/publish"
	"github.com/gofastapi/gofastapi/controlplane/store"
	"github.com/gofastapi/gofastapi/proto/bundle"
)

// dropEnv is a Resolver over a real store (embedded FerretDB) and Redis,
// holding one installed set whose archive no version names yet.
type dropEnv struct {
	st      *store.Store
	pub     *publish.Publisher
	archive []byte
	hash    string
}

func newDropEnv(t *testing.T) *dropEnv {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, embeddedtest.Mongo(t), "test")
	if err != nil {
		t.Fatal(err)
	}
	_, rdb := embeddedtest.Redis(t)

	site := t.TempDir()
	if err := os.WriteFile(filepath.Join(site, "greet.py"), []byte("def hello(): return 'hi'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	archive, hash, err := bundle.PackDeps(site)
	if err != nil {
		t.Fatal(err)
	}
	e := &dropEnv{st: st, pub: publish.New(rdb), archive: archive, hash: hash}
	if err := st.PutDependencySet(ctx, &store.DependencySet{Key: "greet-key", Archive: hash, Packages: []store.Package{{Name: "greet", Version: "1.0"}}, Modules: []string{"greet"}}, archive); err != nil {
		t.Fatal(err)
	}
	if err := e.pub.PutDeps(ctx, hash, archive); err != nil {
		t.Fatal(err)
	}
	return e
}

// resolver returns a Resolver over the env's store as st (which may wrap
// it) and Redis.
func (e *dropEnv) resolver(t *testing.T, st Store, pub Publisher) *Resolver {
	t.Helper()
	r, err := New(Config{Python: "python3", Store: st, Publisher: pub})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// deploy stores a version naming the env's archive, as a deploy does once
// it resolved the same requirements.
func (e *dropEnv) deploy(t *testing.T) {
	t.Helper()
	if err := e.st.PutVersion(context.Background(), &store.Version{AppID: "app2", Hash: "v1", Entrypoint: "app.py", Deps: e.hash}); err != nil {
		t.Fatal(err)
	}
}

// kept reports whether the platform database and Redis still have the
// archive, and that the set is still found by its requirements.
func (e *dropEnv) kept(t *testing.T) (db, cache bool) {
	t.Helper()
	ctx := context.Background()
	got, err := e.st.DependencyArchive(ctx, e.hash)
	db = err == nil && bytes.Equal(got, e.archive)
	if _, err := e.st.DependencySet(ctx, "greet-key"); (err == nil) != db {
		t.Errorf("the set is found: %v; the archive is kept: %v", err == nil, db)
	}
	cache, err = e.pub.HasDeps(ctx, e.hash)
	if err != nil {
		t.Fatal(err)
	}
	return db, cache
}

// deletingStore is the real store, with a deploy storing its version at
// the moment Drop deletes the archive from it.
type deletingStore struct {
	*store.Store
	during func()
}

func (s deletingStore) DeleteDependencyArchive(ctx context.Context, hash string) error {
	s.during()
	return s.Store.DeleteDependencyArchive(ctx, hash)
}

// deletingPublisher is the real publisher, with a deploy storing its
// version at the moment Drop deletes the archive from Redis.
type deletingPublisher struct {
	*publish.Publisher
	during func()
}

func (p deletingPublisher) DeleteDeps(ctx context.Context, hash string) error {
	p.during()
	return p.Publisher.DeleteDeps(ctx, hash)
}

// TestDrop: an archive no version names is deleted from both; one a
// version names is kept.
func TestDrop(t *testing.T) {
	e := newDropEnv(t)
	r := e.resolver(t, e.st, e.pub)
	e.deploy(t)
	if n, err := r.Drop(context.Background(), []string{e.hash}); err != nil || n != 0 {
		t.Fatalf("Drop of an archive a version names = %d, %v; want 0", n, err)
	}
	if db, cache := e.kept(t); !db || !cache {
		t.Fatalf("an archive a version names: in the database %v, in Redis %v; want both", db, cache)
	}
	// The app is deleted (it has versions only: no app document).
	if err := e.st.DeleteApp(context.Background(), "app2"); err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	if n, err := r.Drop(context.Background(), []string{e.hash}); err != nil || n != 1 {
		t.Fatalf("Drop = %d, %v; want 1", n, err)
	}
	if db, cache := e.kept(t); db || cache {
		t.Errorf("a dropped archive: in the database %v, in Redis %v; want neither", db, cache)
	}
	if kept, err := r.Kept(context.Background(), e.hash); err != nil || kept {
		t.Errorf("Kept = %v, %v; want false", kept, err)
	}
}

// TestDropWhileADeployStoresItsVersion: a version stored while Drop
// deletes the archive from the platform database keeps the archive (put
// back, and Redis left alone); one stored after Drop's last look finds,
// through Kept, that it is gone, so its deploy does not point a route at
// it.
func TestDropWhileADeployStoresItsVersion(t *testing.T) {
	ctx := context.Background()
	t.Run("during the database's deletion", func(t *testing.T) {
		e := newDropEnv(t)
		r := e.resolver(t, deletingStore{Store: e.st, during: func() { e.deploy(t) }}, e.pub)
		if n, err := r.Drop(ctx, []string{e.hash}); err != nil || n != 0 {
			t.Fatalf("Drop = %d, %v; want 0: a version names it now", n, err)
		}
		if db, cache := e.kept(t); !db || !cache {
			t.Fatalf("in the database %v, in Redis %v; want both", db, cache)
		}
		if kept, err := r.Kept(ctx, e.hash); err != nil || !kept {
			t.Errorf("Kept = %v, %v; want true", kept, err)
		}
	})
	t.Run("during Redis's deletion", func(t *testing.T) {
		e := newDropEnv(t)
		var kept bool
		r := e.resolver(t, e.st, nil)
		r.cfg.Publisher = deletingPublisher{Publisher: e.pub, during: func() {
			e.deploy(t)
			var err error
			if kept, err = r.Kept(ctx, e.hash); err != nil {
				t.Error(err)
			}
		}}
		if n, err := r.Drop(ctx, []string{e.hash}); err != nil || n != 1 {
			t.Fatalf("Drop = %d, %v; want 1", n, err)
		}
		if kept {
			t.Error("the deploy that stored its version after Drop's last look found the archive kept")
		}
	})
}

// TestInstallBounds: an index serving more than an install may take is
// stopped while pip works, before any disk fills: a wheel larger than an
// archive may be, a file that large in a small wheel, and more files in
// all than an install may write.
func TestInstallBounds(t *testing.T) {
	zeros := func(n int) string { return strings.Repeat("\x00", n) }
	random := make([]byte, bundle.MaxDepsBytes+1<<20)
	rand.Read(random)
	many := map[string]string{}
	for i := range 5 {
		many[fmt.Sprintf("many/f%d.dat", i)] = zeros(60 << 20) // each under the bound, 300 MB in all
	}
	idx := depstest.StartIndex(t,
		depstest.Wheel{Name: "bigwheel", Version: "1.0", Stored: true, Files: map[string]string{"bigwheel/data.bin": string(random)}},
		depstest.Wheel{Name: "bigfile", Version: "1.0", Files: map[string]string{"bigfile/data.bin": zeros(bundle.MaxDepsBytes + 1<<20)}},
		depstest.Wheel{Name: "many", Version: "1.0", Files: many},
	)
	e := newDropEnv(t)
	r, err := New(Config{Python: "python3", Index: idx.URL, Store: e.st, Publisher: e.pub, TempDir: t.TempDir(),
		Allowed: func(context.Context) ([]string, error) { return []string{"bigwheel", "bigfile", "many"}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ pkg, want string }{
		{"bigwheel", "larger than 64 MB"},
		{"bigfile", "larger than 64 MB"},
		{"many", "installing the packages wrote more than 256 MB"},
	} {
		set, probs, err := r.Resolve(context.Background(), []bundle.File{{Name: File, Content: []byte(tc.pkg + "\n")}})
		if err != nil || set != nil || len(probs) != 1 || !strings.Contains(probs[0].Message, tc.want) {
			t.Errorf("%s: %v, %v, %v; want one problem saying %q", tc.pkg, set, probs, err, tc.want)
		}
	}
}
