package main

import (
	"context"
	"log/slog"

	"github.com/gofastapi/gofastapi/controlplane/publish"
	"github.com/gofastapi/gofastapi/proto/bundle"
	"github.com/gofastapi/gofastapi/runner/bundlecache"
)

// bundleCacheBytes bounds the runner host's bundle cache (see bundlecache):
// 64 MB holds 640 bundles of the bench's 100 KB, or 128 of the largest a
// deploy may make (500 KB), in the runners' tmpfs.
const bundleCacheBytes = 64 << 20

// cachingPublisher publishes as publish.Publisher does, and also puts each
// bundle and its compiled modules into the runner host's bundle cache, so
// that the version's first cold start links its files instead of fetching
// them. A cache that fails costs only that: the runner fetches.
type cachingPublisher struct {
	*publish.Publisher
	cache *bundlecache.Cache
	log   *slog.Logger
}

func (p cachingPublisher) PutBundle(ctx context.Context, files []bundle.File) (string, error) {
	hash, err := p.Publisher.PutBundle(ctx, files)
	if err == nil {
		if err := p.cache.PutBundle(hash, files); err != nil {
			p.log.Warn("put a bundle in the runner host's cache", "version", hash, "err", err)
		}
	}
	return hash, err
}

func (p cachingPublisher) PutCompiled(ctx context.Context, version string, files []bundle.File) error {
	err := p.Publisher.PutCompiled(ctx, version, files)
	if err == nil {
		if err := p.cache.PutCompiled(bundle.Hash(files), files); err != nil {
			p.log.Warn("put compiled modules in the runner host's cache", "version", version, "err", err)
		}
	}
	return err
}

func (p cachingPublisher) DeleteBundle(ctx context.Context, hash string) error {
	if err := p.cache.RemoveBundle(hash); err != nil {
		p.log.Warn("remove a bundle from the runner host's cache", "version", hash, "err", err)
	}
	return p.Publisher.DeleteBundle(ctx, hash)
}
