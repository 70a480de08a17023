package launch_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gofastapi/gofastapi/proto/bundle"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/runner"
	"github.com/gofastapi/gofastapi/runner/bundlecache"
	"github.com/gofastapi/gofastapi/runner/launch"
)

// cachedApp says where its module came from and whether it may change its
// own file or add one beside it.
const cachedApp = `import os
from fastapi import FastAPI

app = FastAPI()


@app.get("/from")
def where():
    def can(f):
        try:
            f()
            return True
        except PermissionError:
            return False
    return {"from": %q, "change_own_file": can(lambda: open(__file__, "a").close()),
            "add_file": can(lambda: open("new.txt", "w").close())}
`

// TestSpecializeLinksCachedFiles runs runners with the host's bundle cache
// (as their Python's own user, which the cache needs): a runner links the
// app's files, and its compiled modules when the request names them, from
// the cache when it holds all of them, and otherwise fetches from the store
// as before. The store and the cache hold different code under one version
// here, so the app's answer says which was used. A linked file is
// read-only to the app, which still may add files in its directory.
func TestSpecializeLinksCachedFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the cache is used only when Python runs as a user of its own")
	}
	rd := startRedis(t)
	version := rd.putBundle(t, files("app.py", fmt.Sprintf(cachedApp, "store")))
	root := t.TempDir()
	for d := root; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o711)
	}
	cache, err := bundlecache.New(filepath.Join(root, "bundles"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.PutBundle(version, files("app.py", fmt.Sprintf(cachedApp, "cache"))); err != nil {
		t.Fatal(err)
	}
	tag, pyc := compilePython(t, fmt.Sprintf(cachedApp, "compiled"))
	compiled := []bundle.File{{Name: "__pycache__/app." + tag + ".pyc", Content: pyc}}
	if err := cache.PutCompiled(bundle.Hash(compiled), compiled); err != nil {
		t.Fatal(err)
	}
	other := rd.putBundle(t, files("app.py", fmt.Sprintf(cachedApp, "store, another version")))
	tests := []struct {
		name              string
		version, compiled string
		from              string
		cached            bool
		modules           int32
	}{
		{"bundle cached", version, "", "cache", true, 0},
		{"bundle and compiled modules cached", version, bundle.Hash(compiled), "compiled", true, 1},
		{"compiled modules not cached", version, bundle.Hash(files("x", "y")), "store", false, 0},
		{"bundle not cached", other, "", "store, another version", false, 0},
	}
	forEachMode(t, func(t *testing.T, m mode) {
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r, _ := startConfigured(t, launch.Config{
					Zygote: m.zygoteSocket(t), WorkDir: filepath.Join(root, fmt.Sprintf("runner-%s-%d", m.name, i)), RedisURL: rd.runnerURL,
					RunAs: &runner.RunAs{UID: 1900067010, GID: 1900067010}, BundleCache: cache.Root(),
				})
				res, err := specialize(t, r, &v1.SpecializeRequest{Version: tt.version, Entrypoint: "app.py", Compiled: tt.compiled})
				if err != nil {
					t.Fatalf("Specialize: %v", err)
				}
				if res.GetCached() != tt.cached || res.GetCompiledModules() != tt.modules {
					t.Errorf("cached %v, compiled modules %d; want %v, %d", res.GetCached(), res.GetCompiledModules(), tt.cached, tt.modules)
				}
				if tt.cached && (res.GetFetchMicros() != 0 || res.GetVerifyMicros() != 0) {
					t.Errorf("fetch %d us, verify %d us: want none for linked files", res.GetFetchMicros(), res.GetVerifyMicros())
				}
				_, got := get(t, res.GetAppAddr(), "/from")
				want := map[string]any{"from": tt.from, "change_own_file": !tt.cached, "add_file": true}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("GET /from (-want +got):\n%s", diff)
				}
			})
		}
	})
}
