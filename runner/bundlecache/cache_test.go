package bundlecache

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gofastapi/gofastapi/proto/bundle"
)

func files(nameContent ...string) []bundle.File {
	var fs []bundle.File
	for i := 0; i < len(nameContent); i += 2 {
		fs = append(fs, bundle.File{Name: nameContent[i], Content: []byte(nameContent[i+1])})
	}
	return fs
}

// TestLink links a cached bundle and its compiled modules into an app
// directory: the files are the cache's own (hard links, read-only), the
// directories are new, and mkdir is told about each one it made.
func TestLink(t *testing.T) {
	root := t.TempDir()
	c, err := New(filepath.Join(root, "cache"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	src := files("app.py", "print(1)", "pkg/mod.py", "x = 1", "data.json", "[]")
	pyc := files("__pycache__/app.cpython-311.pyc", "A", "pkg/__pycache__/mod.cpython-311.pyc", "B")
	if err := c.PutBundle("v1", src); err != nil {
		t.Fatal(err)
	}
	if c.Has("v1", "c1") {
		t.Error("Has(v1, c1) before the compiled modules were put")
	}
	if err := c.PutCompiled("c1", pyc); err != nil {
		t.Fatal(err)
	}
	if !c.Has("v1", "") || !c.Has("v1", "c1") || c.Has("v2", "") {
		t.Errorf("Has: v1 %v, v1+c1 %v, v2 %v; want true, true, false", c.Has("v1", ""), c.Has("v1", "c1"), c.Has("v2", ""))
	}

	app := filepath.Join(root, "app")
	os.Mkdir(app, 0o700)
	var made []string
	ok, modules, err := Link(c.Root(), "v1", "c1", app, func(p string) error { made = append(made, strings.TrimPrefix(p, app+"/")); return nil })
	if err != nil || !ok || modules != 2 {
		t.Fatalf("Link = %v, %d, %v; want true, 2, nil", ok, modules, err)
	}
	wantFiles(t, app, append(src, pyc...), 2)
	if want := "pkg __pycache__ pkg/__pycache__"; strings.Join(made, " ") != want {
		t.Errorf("directories made: %q, want %q", made, want)
	}

	for _, tt := range []struct{ version, compiled string }{{"v2", ""}, {"v1", "c2"}} {
		empty := t.TempDir()
		ok, _, err := Link(c.Root(), tt.version, tt.compiled, empty, func(string) error { return nil })
		entries, _ := os.ReadDir(empty)
		if ok || err != nil || len(entries) != 0 {
			t.Errorf("Link(%s, %q) = %v, %v with %d entries; want false, nil, nothing linked", tt.version, tt.compiled, ok, err, len(entries))
		}
	}
}

// TestBudget keeps the newest entries within the byte budget, removes a
// bundle on request and skips what alone is over the budget.
func TestBudget(t *testing.T) {
	c, err := New(filepath.Join(t.TempDir(), "cache"), 100)
	if err != nil {
		t.Fatal(err)
	}
	put := func(version string, size int) {
		t.Helper()
		if err := c.PutBundle(version, files("app.py", strings.Repeat("x", size))); err != nil {
			t.Fatal(err)
		}
	}
	put("a", 40)
	put("b", 40)
	put("a", 40) // held already: stays the oldest
	put("c", 40) // a goes
	put("big", 101)
	for v, want := range map[string]bool{"a": false, "b": true, "c": true, "big": false} {
		if got := c.Has(v, ""); got != want {
			t.Errorf("Has(%s) = %v, want %v", v, got, want)
		}
		if _, err := os.Stat(BundleDir(c.Root(), v)); (err == nil) != want {
			t.Errorf("%s on disk: %v, want %v", v, err == nil, want)
		}
	}
	if err := c.RemoveBundle("b"); err != nil {
		t.Fatal(err)
	}
	put("d", 40)
	if c.Has("b", "") || !c.Has("c", "") || !c.Has("d", "") {
		t.Errorf("after removing b and putting d: b %v, c %v, d %v; want false, true, true", c.Has("b", ""), c.Has("c", ""), c.Has("d", ""))
	}
	entries, _ := os.ReadDir(c.Root())
	if len(entries) != 2 {
		t.Errorf("cache directory holds %d entries, want 2 (no temporary ones left)", len(entries))
	}
}

// TestLinkAcrossFileSystems copies what it cannot link: an app directory on
// another file system (a runner's own tmpfs) gets read-only copies.
func TestLinkAcrossFileSystems(t *testing.T) {
	shm, err := os.MkdirTemp("/dev/shm", "bundlecache-test-")
	if err != nil {
		t.Skip("no /dev/shm:", err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	var a, b syscall.Stat_t
	app := t.TempDir()
	if syscall.Stat(shm, &a) != nil || syscall.Stat(app, &b) != nil || a.Dev == b.Dev {
		t.Skip("/dev/shm and the test's directory are one file system")
	}
	c, err := New(filepath.Join(shm, "cache"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	src := files("app.py", "print(1)", "pkg/mod.py", "x = 1")
	if err := c.PutBundle("v1", src); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := Link(c.Root(), "v1", "", app, func(string) error { return nil }); err != nil || !ok {
		t.Fatalf("Link across file systems = %v, %v; want true, nil", ok, err)
	}
	wantFiles(t, app, src, 1)
}

// wantFiles checks that dir holds files, read-only, each with links hard
// links (2: linked from the cache; 1: a copy).
func wantFiles(t *testing.T, dir string, files []bundle.File, links uint64) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(dir, f.Name)
		got, err := os.ReadFile(p)
		if err != nil || string(got) != string(f.Content) {
			t.Errorf("%s = %q, %v; want %q", f.Name, got, err, f.Content)
			continue
		}
		st, _ := os.Stat(p)
		if n := st.Sys().(*syscall.Stat_t).Nlink; st.Mode().Perm() != 0o444 || uint64(n) != links {
			t.Errorf("%s: mode %v, %d links; want read-only with %d", f.Name, st.Mode(), n, links)
		}
	}
}
