package local

import (
	"context"
	"os"
	"path/filepath"
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
	rd, err := embedded.StartRedis(ctx, "redis-server")
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Stop()
	files := []bundle.File{{Name: "app.py", Content: []byte("from fastapi import FastAPI\n\napp = FastAPI()\n")}}
	version := bundle.Hash(files)
	data, err := bundle.Encode(files)
	if err != nil {
		t.Fatal(err)
	}
	opts, _ := redis.ParseURL(rd.URL())
	rdb := redis.NewClient(opts)
	defer rdb.Close()
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
