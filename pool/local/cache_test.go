package local

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gofastapi/gofastapi/controlplane/embedded"
	"github.com/gofastapi/gofastapi/proto/bundle"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// TestBackendCachesFetchedBundles starts runners as users of their own
// with a bundle cache: the first start of a version fetches it from Redis
// and the backend then puts it in the cache, so the second links it.
func TestBackendCachesFetchedBundles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the cache is used only when runners run as users of their own")
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	rd, rdb := startRedis(t, ctx)
	files := []bundle.File{{Name: "app.py", Content: []byte("from fastapi import FastAPI\n\napp = FastAPI()\n")}}
	version := bundle.Hash(files)
	data, err := bundle.Encode(files)
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, bundle.Key(version), data, 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Runners, and the backend's cache fill, read as the platform's
	// read-only runner user.
	runnerURL, err := embedded.RunnerUser(ctx, rdb, rd.URL())
	if err != nil {
		t.Fatal(err)
	}

	b, err := New(Config{
		Command: []string{os.Args[0], "runner"}, Python: "/usr/bin/python3", Dir: filepath.Join(t.TempDir(), "runners"),
		RedisURL: runnerURL, ReadyTimeout: 10 * time.Second,
		RunnerUIDs: UIDRange{Base: 1900066000, Count: 4}, BundleCacheBytes: 1 << 20,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer b.Close()
	specialize := func() *v1.SpecializeResponse {
		t.Helper()
		inst, err := b.Start(ctx)
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		defer inst.Stop(time.Second)
		res, err := inst.Specialize(ctx, &v1.SpecializeRequest{Version: version, Entrypoint: "app.py"})
		if err != nil {
			t.Fatalf("Specialize: %v", err)
		}
		return res
	}
	if res := specialize(); res.GetCached() {
		t.Fatal("the first start linked from an empty cache")
	}
	// The backend fills the cache after the start has answered.
	for !b.BundleCache().Has(version, "") {
		if ctx.Err() != nil {
			t.Fatal("the fetched bundle never reached the cache")
		}
		time.Sleep(10 * time.Millisecond) // polling the cache, not waiting for readiness
	}
	if res := specialize(); !res.GetCached() || res.GetFetchMicros() != 0 {
		t.Errorf("second start: cached %v, fetch %d us; want linked from the cache", res.GetCached(), res.GetFetchMicros())
	}
}

// TestCacheFillChecksCompiledNames fills the cache from Redis the way the
// backend does after a start, with compiled modules that match their hash:
// those named for a module of the bundle are kept, and a set holding one
// that is not is refused whole, as a runner refuses it when it fetches.
func TestCacheFillChecksCompiledNames(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	rd, rdb := startRedis(t, ctx)
	set := func(key string, files []bundle.File) {
		t.Helper()
		data, err := bundle.Encode(files)
		if err != nil {
			t.Fatal(err)
		}
		if err := rdb.Set(ctx, key, data, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	files := []bundle.File{
		{Name: "app.py", Content: []byte("from fastapi import FastAPI\n\napp = FastAPI()\n")},
		{Name: "lib/util.py", Content: []byte("X = 1\n")},
		{Name: "data.json", Content: []byte("{}")},
	}
	version := bundle.Hash(files)
	set(bundle.Key(version), files)

	c, err := newBundleCache(t.TempDir(), 1<<20, rd.URL(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer c.rdb.Close()
	for _, tc := range []struct {
		name    string
		modules []string
		ok      bool
	}{
		{"modules of the bundle", []string{"__pycache__/app.cpython-311.pyc", "lib/__pycache__/util.cpython-311.pyc"}, true},
		{"a module the bundle has not", []string{"__pycache__/app.cpython-311.pyc", "__pycache__/sitecustomize.cpython-311.pyc"}, false},
		{"not in a __pycache__", []string{"app.cpython-311.pyc"}, false},
		{"the compiled module of a data file", []string{"__pycache__/data.cpython-311.pyc"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var modules []bundle.File
			for _, name := range tc.modules {
				modules = append(modules, bundle.File{Name: name, Content: []byte("compiled " + name)})
			}
			compiled := bundle.Hash(modules)
			set(bundle.CompiledKey(version), modules)
			err := c.fillErr(ctx, version, compiled)
			if tc.ok && (err != nil || !c.Has(version, compiled)) {
				t.Fatalf("fill: %v, cached %v; want the modules cached", err, c.Has(version, compiled))
			}
			if !tc.ok {
				if err == nil || !strings.Contains(err.Error(), "is not the compiled module of a file of the bundle") {
					t.Fatalf("fill: %v; want the modules refused by name", err)
				}
				if c.Has(version, compiled) {
					t.Fatal("refused modules are in the cache")
				}
			}
		})
	}
}

// startRedis starts a redis-server for the test and returns it with a
// client of it; both end with the test.
func startRedis(t *testing.T, ctx context.Context) (*embedded.Redis, *redis.Client) {
	t.Helper()
	rd, err := embedded.StartRedis(ctx, "redis-server")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rd.Stop)
	opts, _ := redis.ParseURL(rd.URL())
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	return rd, rdb
}
