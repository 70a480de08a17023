package runner

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// depsSet makes an unpacked set named after hash of one byte in root, last
// used age ago.
func depsSet(t *testing.T, root string, b byte, age time.Duration) string {
	t.Helper()
	hash := strings.Repeat(string(rune(b)), 64)
	dir := filepath.Join(root, hash)
	if err := os.MkdirAll(filepath.Join(dir, "pkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pkg", "__init__.py"), []byte("x = 1\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	age1(t, dir, age)
	return hash
}

// age1 sets path's modification time age ago.
func age1(t *testing.T, path string, age time.Duration) {
	t.Helper()
	at := time.Now().Add(-age)
	if err := os.Chtimes(path, at, at); err != nil {
		t.Fatal(err)
	}
}

func exists(path string) bool { _, err := os.Lstat(path); return err == nil }

// TestPruneDeps: the sets no runner holds that were last used longer ago
// than the keep go, with their lock files; held, recent and excepted ones
// stay; left-over unpacks and lock files of failed unpacks go once old.
func TestPruneDeps(t *testing.T) {
	root := t.TempDir()
	const keep = time.Hour
	old, recent := 2*keep, keep/2
	unused := depsSet(t, root, 'a', old)
	held := depsSet(t, root, 'b', old)
	fresh := depsSet(t, root, 'c', recent)
	except := depsSet(t, root, 'd', old)
	lock, err := lockDeps(root, held)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{".unpack-1", ".unpack-2"} {
		if err := os.Mkdir(filepath.Join(root, name), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	age1(t, filepath.Join(root, ".unpack-1"), old)
	orphan := strings.Repeat("e", 64) + ".lock"
	if err := os.WriteFile(filepath.Join(root, orphan), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	age1(t, filepath.Join(root, orphan), old)
	if f, err := lockDeps(root, unused); err != nil {
		t.Fatal(err)
	} else {
		f.Close() // a runner that used it exited
	}

	removed, err := pruneDeps(root, except, keep, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	if want := []string{".unpack-1", unused, strings.Repeat("e", 64)}; !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	for _, name := range []string{unused, unused + ".lock", ".unpack-1", orphan} {
		if exists(filepath.Join(root, name)) {
			t.Errorf("%s is still there", name)
		}
	}
	for _, name := range []string{held, held + ".lock", fresh, except, ".unpack-2"} {
		if !exists(filepath.Join(root, name)) {
			t.Errorf("%s was removed", name)
		}
	}
	if entries, _ := os.ReadDir(root); slices.ContainsFunc(entries, func(e os.DirEntry) bool { return strings.HasPrefix(e.Name(), ".prune-") }) {
		t.Error("a removal left its .prune- directory behind")
	}

	lock.Close() // the runner that held it exits
	if removed, err := pruneDeps(root, except, keep, time.Now()); err != nil || !slices.Equal(removed, []string{held}) {
		t.Errorf("after its runner exited: removed %v, %v; want %s", removed, err, held)
	}
}

// TestPrepareDepsHoldsTheSharedSet: a runner that uses a set of the
// host's shared cache marks it used and holds it, so a pruner leaves it
// until the runner exits.
func TestPrepareDepsHoldsTheSharedSet(t *testing.T) {
	root := t.TempDir()
	hash := depsSet(t, root, 'a', 48*time.Hour)
	s := &service{depsRoot: root, depsKeep: 24 * time.Hour, logf: t.Logf}
	res := &v1.SpecializeResponse{}
	dir, err := s.prepareDeps(context.Background(), hash, res)
	if err != nil || dir != filepath.Join(root, hash) || !res.GetDepsCached() {
		t.Fatalf("prepareDeps = %q, %v (cached %v); want the cached set", dir, err, res.GetDepsCached())
	}
	if info, err := os.Stat(dir); err != nil || time.Since(info.ModTime()) > time.Minute {
		t.Errorf("the set's last use is %v (%v), want now", info.ModTime(), err)
	}
	age1(t, dir, 48*time.Hour)
	if removed, err := pruneDeps(root, "", 24*time.Hour, time.Now()); err != nil || len(removed) != 0 {
		t.Fatalf("pruned %v, %v while a runner holds it", removed, err)
	}
	s.depsLock.Close()
	if removed, err := pruneDeps(root, "", 24*time.Hour, time.Now()); err != nil || len(removed) != 1 || exists(dir) {
		t.Fatalf("pruned %v, %v once the runner exited; want the set gone", removed, err)
	}
}

// TestLockDepsAfterARemoval: a runner that waits for a set's lock while a
// pruner removes the set and its lock file ends up holding the lock file
// the path names, not the removed one.
func TestLockDepsAfterARemoval(t *testing.T) {
	root := t.TempDir()
	hash := strings.Repeat("a", 64)
	path := filepath.Join(root, hash+".lock")
	pruner, err := lockFile(path, syscall.LOCK_EX)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *os.File)
	go func() {
		f, err := lockDeps(root, hash)
		if err != nil {
			t.Error(err)
		}
		got <- f
	}()
	os.Remove(path)
	pruner.Close()
	f := <-got
	defer f.Close()
	var held, named syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &held); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(path, &named); err != nil || held.Ino != named.Ino {
		t.Fatalf("the runner holds inode %d, the path names %d (%v)", held.Ino, named.Ino, err)
	}
	if _, err := lockFile(path, syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		t.Error("a pruner got the lock the runner holds")
	}
}
