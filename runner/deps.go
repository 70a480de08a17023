package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gofastapi/gofastapi/proto/bundle"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// depsRoot is where the agent unpacks apps' dependencies: the host's
// shared --deps-cache, else its own workdir.
func (c config) depsRoot() string {
	if c.depsCache != "" {
		return c.depsCache
	}
	return filepath.Join(c.workdir, "deps")
}

// sharedDepsKeep is how long unused sets are kept in the host's shared
// cache; 0 without one (a runner's own directory goes with the runner).
func (c config) sharedDepsKeep() time.Duration {
	if c.depsCache == "" {
		return 0
	}
	return c.depsKeep
}

// prepareDeps makes the dependency archive hash (the route's deps) ready
// and returns the directory Python imports them from; "" when the app has
// none. An archive is unpacked once per depsRoot, under its content hash:
// complete under a temporary name, then renamed into place, so a runner
// sees all of it or nothing, and of two runners unpacking the same at
// once, one rename wins and both use it. Its files are the agent's user's
// and read-only to the app's (see RunAs), so no app can change what
// another imports.
//
// In the host's shared cache (depsKeep set) the runner holds the set it
// uses (see lockDeps) until it exits, and an agent that unpacked a new set
// then removes those no runner holds that were last used more than
// depsKeep ago (see pruneDeps), so the cache does not grow without end.
func (s *service) prepareDeps(ctx context.Context, hash string, res *v1.SpecializeResponse) (string, error) {
	if hash == "" {
		return "", nil
	}
	if !sha256Hex(hash) {
		return "", failure(errInvalidRequest, "dependencies %q is not a content hash", hash)
	}
	start := time.Now()
	defer func() { res.DepsMicros = time.Since(start).Microseconds() }()
	dir := filepath.Join(s.depsRoot, hash)
	if err := os.MkdirAll(s.depsRoot, 0o711); err != nil {
		return "", fmt.Errorf("dependencies: %w", err)
	}
	if s.depsKeep > 0 {
		// The host's shared cache: held until the agent exits, so no
		// pruner removes the set while the app may import from it.
		lock, err := lockDeps(s.depsRoot, hash)
		if err != nil {
			return "", fmt.Errorf("dependencies: %w", err)
		}
		s.depsLock = lock
	}
	if _, err := os.Stat(dir); err == nil {
		res.DepsCached = true
		if s.depsKeep > 0 {
			os.Chtimes(dir, start, start) // used now: kept another depsKeep
		}
		return dir, nil
	}
	data, err := s.redis.Get(ctx, bundle.DepsKey(hash)).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return "", failure(errBundleNotFound, "dependencies %s not found", hash)
	case err != nil && ctx.Err() != nil:
		return "", ctx.Err()
	case err != nil:
		s.logf("fetch dependencies %s: %v", hash, err)
		return "", failure(errBundleStore, "bundle store unavailable")
	}
	tmp, err := os.MkdirTemp(s.depsRoot, ".unpack-")
	if err != nil {
		return "", fmt.Errorf("dependencies: %w", err)
	}
	defer os.RemoveAll(tmp)
	unpacked := filepath.Join(tmp, "d")
	err = bundle.UnpackDeps(data, hash, unpacked)
	switch {
	case errors.Is(err, bundle.ErrHashMismatch):
		return "", failure(errBundleCorrupt, "dependencies %s do not match their hash", hash)
	case err != nil:
		return "", failure(errBundleCorrupt, "dependencies %s: %v", hash, err)
	}
	if err := os.Rename(unpacked, dir); err != nil {
		if _, serr := os.Stat(dir); serr != nil {
			return "", fmt.Errorf("dependencies: %w", err)
		}
	}
	if s.depsKeep > 0 {
		// The cache grew: sets no runner used for depsKeep go, off the
		// start's path.
		go func() {
			removed, err := pruneDeps(s.depsRoot, hash, s.depsKeep, time.Now())
			if len(removed) > 0 {
				s.logf("removed dependencies unused for %s from the host's cache: %s", s.depsKeep, strings.Join(removed, ", "))
			}
			if err != nil {
				s.logf("prune the host's dependencies: %v", err)
			}
		}()
	}
	return dir, nil
}

// sha256Hex reports whether s is a sha256 in lowercase hex, as content
// hashes are: a name that cannot leave the directory it is joined to.
func sha256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
