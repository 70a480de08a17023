package deps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/gofastapi/gofastapi/controlplane/store"
	"github.com/gofastapi/gofastapi/controlplane/validate"
	"github.com/gofastapi/gofastapi/proto/bundle"
)

// Store keeps installed sets and their archives.
type Store interface {
	DependencySet(ctx context.Context, key string) (*store.DependencySet, error)
	PutDependencySet(ctx context.Context, d *store.DependencySet, archive []byte) error
	DependencyArchive(ctx context.Context, hash string) ([]byte, error)
	DepsInUse(ctx context.Context, hash string) (bool, error)
	DependencySetsByArchive(ctx context.Context, hash string) ([]*store.DependencySet, error)
	HasDependencyArchive(ctx context.Context, hash string) (bool, error)
	DeleteDependencyArchive(ctx context.Context, hash string) error
}

// Publisher puts archives where runners fetch them.
type Publisher interface {
	HasDeps(ctx context.Context, hash string) (bool, error)
	PutDeps(ctx context.Context, hash string, archive []byte) error
	DeleteDeps(ctx context.Context, hash string) error
}

// Config configures a Resolver.
type Config struct {
	// Python is the runners' interpreter; pip runs in it, so the packages
	// suit it.
	Python string
	// Index is the package index's URL (PEP 503 "simple" API); empty:
	// apps cannot declare dependencies.
	Index string
	// Allowed returns the dependency allowlist in force.
	Allowed   func(ctx context.Context) ([]string, error)
	Store     Store
	Publisher Publisher
	// Timeout bounds one install; 0 means two minutes.
	Timeout time.Duration
	// TempDir is where installs happen; empty: the system's.
	TempDir string
}

// Set is the dependencies of one app version.
type Set struct {
	// Archive is the content hash of the installed packages' archive
	// (Route.deps).
	Archive  string
	Packages []store.Package
	// Modules are the top-level modules the packages provide: the app may
	// import them.
	Modules []string
	// Cached is true when the set had been installed before.
	Cached bool
}

// Resolver installs apps' dependencies. It is safe for concurrent use;
// concurrent resolutions of the same requirements install once.
type Resolver struct {
	cfg      Config
	tag      string          // the interpreter's cache tag, such as cpython-311
	platform map[string]bool // distributions the interpreter has, normalized
	group    singleflight.Group
}

// New returns a Resolver for cfg; it asks the interpreter what it is and
// which packages it has.
func New(cfg Config) (*Resolver, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.TempDir != "" {
		if err := os.MkdirAll(cfg.TempDir, 0o700); err != nil {
			return nil, fmt.Errorf("dependencies: %w", err)
		}
	}
	out, err := exec.Command(cfg.Python, "-I", "-c", `import sys, importlib.metadata as m
print(sys.implementation.cache_tag)
for d in m.distributions(): print(d.metadata["Name"])`).Output()
	if err != nil {
		return nil, fmt.Errorf("dependencies: ask %s for its packages: %w", cfg.Python, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	r := &Resolver{cfg: cfg, tag: lines[0], platform: map[string]bool{}}
	for _, name := range lines[1:] {
		r.platform[Normalize(name)] = true
	}
	return r, nil
}

// Index is the package index dependencies come from; empty if none.
func (r *Resolver) Index() string { return r.cfg.Index }

// Key names the installation of reqs by r: the same requirements for the
// same interpreter from the same index are installed once.
func (r *Resolver) Key(reqs []Requirement) string {
	lines := make([]string, len(reqs))
	for i, q := range reqs {
		lines[i] = q.String()
	}
	slices.Sort(lines)
	sum := sha256.Sum256([]byte("python=" + r.tag + "\nindex=" + r.cfg.Index + "\n" + strings.Join(lines, "\n")))
	return hex.EncodeToString(sum[:])
}

// Resolve returns the dependencies declared by files' requirements.txt,
// installing them if no app has installed the same before, and makes sure
// Redis has their archive. It returns nil when files declare none, and
// problems (in requirements.txt) when they cannot be installed as
// declared; an error means the platform failed.
func (r *Resolver) Resolve(ctx context.Context, files []bundle.File) (*Set, []validate.Problem, error) {
	i := slices.IndexFunc(files, func(f bundle.File) bool { return f.Name == File })
	if i < 0 {
		return nil, nil, nil
	}
	reqs, probs := Parse(files[i].Content)
	if len(probs) > 0 || len(reqs) == 0 {
		return nil, probs, nil
	}
	allowed, err := r.cfg.Allowed(ctx)
	if err != nil {
		return nil, nil, err
	}
	if probs := CheckAllowed(reqs, allowed); len(probs) > 0 {
		return nil, probs, nil
	}
	if r.cfg.Index == "" {
		return nil, []validate.Problem{{File: File, Message: "this platform has no package index, so apps cannot declare dependencies: remove requirements.txt, or ask an admin to start the platform with --package-index"}}, nil
	}
	key := r.Key(reqs)
	v, err, _ := r.group.Do(key, func() (any, error) { return r.resolve(context.WithoutCancel(ctx), key, reqs, allowed) })
	if err != nil {
		return nil, nil, err
	}
	res := v.(resolved)
	if len(res.probs) > 0 {
		return nil, res.probs, nil
	}
	set := *res.set
	// The allowlist may have lost a package since the set was installed.
	ok := allowSet(allowed)
	for _, p := range set.Packages {
		if !ok(p.Name) && !r.platform[p.Name] {
			return nil, []validate.Problem{notAllowed(p)}, nil
		}
	}
	return &set, nil, nil
}

type resolved struct {
	set   *Set
	probs []validate.Problem
}

// notAllowed is the problem of package p, which the requirements need,
// being off the allowlist.
func notAllowed(p store.Package) validate.Problem {
	return validate.Problem{File: File, Message: fmt.Sprintf(
		"package %s %s, which your requirements need, is not on the platform's dependency allowlist; ask an admin to allow it", p.Name, p.Version)}
}

// resolve installs reqs, allowed by allowed, unless the set of key was
// installed before.
func (r *Resolver) resolve(ctx context.Context, key string, reqs []Requirement, allowed []string) (resolved, error) {
	d, err := r.cfg.Store.DependencySet(ctx, key)
	if err == nil {
		if err := r.Publish(ctx, d.Archive); err != nil {
			return resolved{}, err
		}
		return resolved{set: &Set{Archive: d.Archive, Packages: d.Packages, Modules: d.Modules, Cached: true}}, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return resolved{}, err
	}
	dir, err := os.MkdirTemp(r.cfg.TempDir, "gofastapi-deps-")
	if err != nil {
		return resolved{}, fmt.Errorf("dependencies: %w", err)
	}
	defer os.RemoveAll(dir)
	site := filepath.Join(dir, "site")
	if probs, err := r.pip(ctx, dir, site, reqs); err != nil || len(probs) > 0 {
		return resolved{probs: probs}, err
	}
	packages, probs, err := r.check(site, allowSet(allowed))
	if err != nil || len(probs) > 0 {
		return resolved{probs: probs}, err
	}
	archive, hash, err := bundle.PackDeps(site)
	if err != nil {
		return resolved{}, err
	}
	set := &Set{Archive: hash, Packages: packages, Modules: topModules(site)}
	if err := r.cfg.Store.PutDependencySet(ctx, &store.DependencySet{Key: key, Archive: hash, Packages: packages, Modules: set.Modules}, archive); err != nil {
		return resolved{}, err
	}
	if err := r.cfg.Publisher.PutDeps(ctx, hash, archive); err != nil {
		return resolved{}, err
	}
	return resolved{set: set}, nil
}

// Publish makes sure Redis has the archive with content hash hash, from
// the platform database if Redis lost it.
func (r *Resolver) Publish(ctx context.Context, hash string) error {
	ok, err := r.cfg.Publisher.HasDeps(ctx, hash)
	if err != nil || ok {
		return err
	}
	archive, err := r.cfg.Store.DependencyArchive(ctx, hash)
	if err != nil {
		return fmt.Errorf("dependency archive %s: %w", hash, err)
	}
	return r.cfg.Publisher.PutDeps(ctx, hash, archive)
}

// Drop deletes those of the dependency archives archives that no version
// names any more (after an app's deletion), from the platform database and
// Redis, and returns how many it deleted. The next app with the same
// requirements installs them again.
//
// A deploy may store a version naming an archive while Drop deletes it
// (the deploy resolved the same requirements as the deleted app's just
// before). So Drop looks again once the archive is out of the platform
// database: if a version names it now, it puts the archive back and leaves
// Redis alone; Redis loses it only after that look found none. A deploy
// that stored its version after that look finds the archive gone (Kept),
// installs the requirements again and stores its version naming the new
// archive; it never points its route at a freed one.
func (r *Resolver) Drop(ctx context.Context, archives []string) (int64, error) {
	var n int64
	for _, h := range archives {
		dropped, err := r.drop(ctx, h)
		if err != nil {
			return n, err
		}
		if dropped {
			n++
		}
	}
	return n, nil
}

// drop deletes archive h unless a version names it; see Drop.
func (r *Resolver) drop(ctx context.Context, h string) (bool, error) {
	if used, err := r.cfg.Store.DepsInUse(ctx, h); err != nil || used {
		return false, err
	}
	sets, err := r.cfg.Store.DependencySetsByArchive(ctx, h)
	if err != nil {
		return false, err
	}
	archive, err := r.cfg.Store.DependencyArchive(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		archive = nil // dropped before: only Redis may still have it
	} else if err != nil {
		return false, err
	}
	if err := r.cfg.Store.DeleteDependencyArchive(ctx, h); err != nil {
		return false, err
	}
	used, err := r.cfg.Store.DepsInUse(ctx, h)
	if err != nil {
		return false, err
	}
	if used {
		// A deploy named it meanwhile: it stays (in Redis at least, if
		// the platform database had lost it before).
		if archive == nil {
			return false, nil
		}
		for _, d := range sets {
			if err := r.cfg.Store.PutDependencySet(ctx, d, archive); err != nil {
				return false, fmt.Errorf("dependency archive %s, named by a version while it was deleted: put back: %w", h, err)
			}
		}
		return false, nil
	}
	if err := r.cfg.Publisher.DeleteDeps(ctx, h); err != nil {
		return false, err
	}
	return true, nil
}

// Kept reports whether dependency archive hash is still kept: a deploy
// asks, once its version names the archive, in case Drop freed it
// meanwhile (see Drop).
func (r *Resolver) Kept(ctx context.Context, hash string) (bool, error) {
	return r.cfg.Store.HasDependencyArchive(ctx, hash)
}
