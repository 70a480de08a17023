package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gofastapi/gofastapi/proto/bundle"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/runner"
	"github.com/gofastapi/gofastapi/runner/bundlecache"
	"github.com/gofastapi/gofastapi/runner/launch"
)

// fillTimeout bounds filling the cache with one version after a start.
const fillTimeout = 10 * time.Second

// bundleCache is the host's bundle cache and what fills it after a start
// that had to fetch.
type bundleCache struct {
	*bundlecache.Cache
	rdb *redis.Client // as the runners' read-only user
	log *slog.Logger
}

func newBundleCache(workRoot string, maxBytes int64, redisURL string, log *slog.Logger) (*bundleCache, error) {
	c, err := bundlecache.New(filepath.Join(workRoot, "bundles"), maxBytes)
	if err != nil {
		return nil, err
	}
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		// Its errors may quote the URL, password included.
		return nil, errors.New("local: RedisURL is not a valid redis URL")
	}
	return &bundleCache{Cache: c, rdb: redis.NewClient(runner.RunnerRedisOptions(opts)), log: log}, nil
}

// fill puts req's bundle and compiled modules into the cache unless it has
// them: the next start of that version links them.
func (c *bundleCache) fill(ctx context.Context, req *v1.SpecializeRequest) {
	version, compiled := req.GetVersion(), req.GetCompiled()
	if c.Has(version, compiled) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, fillTimeout)
	defer cancel()
	if err := c.fillErr(ctx, version, compiled); err != nil {
		c.log.Warn("fill the bundle cache", "version", version, "err", err)
	}
}

func (c *bundleCache) fillErr(ctx context.Context, version, compiled string) error {
	data, compiledData, err := runner.FetchBundle(ctx, c.rdb, version, compiled != "")
	if err != nil {
		return fmt.Errorf("get %s: %w", bundle.Key(version), err)
	}
	files, err := bundle.Decode(data, version)
	if err != nil {
		return err
	}
	if compiled != "" {
		// Checked as a runner checks what it fetches: every name the
		// compiled module of one of the bundle's files.
		modules, err := runner.CompiledFiles(compiledData, compiled, files)
		if err != nil {
			return fmt.Errorf("compiled modules %s of bundle %s: %w", compiled, version, err)
		}
		if err := c.PutCompiled(compiled, modules); err != nil {
			return err
		}
	}
	return c.PutBundle(version, files)
}

// cachingRunner is a runner whose start, if it had to fetch its files,
// fills the cache with them afterwards.
type cachingRunner struct {
	*launch.Runner
	b *Backend
}

func (r cachingRunner) Specialize(ctx context.Context, req *v1.SpecializeRequest) (*v1.SpecializeResponse, error) {
	res, err := r.Runner.Specialize(ctx, req)
	if err == nil && !res.GetCached() {
		r.b.background(func(ctx context.Context) { r.b.cache.fill(ctx, req) })
	}
	return res, err
}
