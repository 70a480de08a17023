package publish

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	"github.com/gofastapi/gofastapi/proto/bundle"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// Channel is the pub/sub channel on which the slug of a changed route is
// published, and the DomainKey of a changed custom domain.
const Channel = "routes"

// RouteKey is the Redis key of slug's route record.
func RouteKey(slug string) string { return "route:" + slug }

// DomainKey is the Redis key holding the slug of the app served at custom
// domain host. A change of it is published on Channel as the key itself
// (slugs have no colon).
func DomainKey(host string) string { return "domain:" + host }

// Publisher writes bundles and routes.
type Publisher struct{ rdb redis.UniversalClient }

// New returns a Publisher over rdb.
func New(rdb redis.UniversalClient) *Publisher { return &Publisher{rdb: rdb} }

// PutBundle stores files under their content hash and returns the hash.
// Bundles are immutable, so an existing key is left alone.
func (p *Publisher) PutBundle(ctx context.Context, files []bundle.File) (string, error) {
	hash := bundle.Hash(files)
	data, err := bundle.Encode(files)
	if err != nil {
		return "", err
	}
	if err := p.rdb.SetNX(ctx, bundle.Key(hash), data, 0).Err(); err != nil {
		return "", fmt.Errorf("put bundle %s: %w", hash, err)
	}
	return hash, nil
}

// PutCompiled stores the compiled modules of bundle version (see
// validate.CheckCompiled). Their content hash, which the version's route
// carries so that runners can check them, is bundle.Hash(files). Compiling
// the same files again may give other bytes: the last deploy's are kept.
func (p *Publisher) PutCompiled(ctx context.Context, version string, files []bundle.File) error {
	data, err := bundle.Encode(files)
	if err != nil {
		return err
	}
	if err := p.rdb.Set(ctx, bundle.CompiledKey(version), data, 0).Err(); err != nil {
		return fmt.Errorf("put compiled modules of %s: %w", version, err)
	}
	return nil
}

// HasBundle reports whether the bundle hash is in Redis.
func (p *Publisher) HasBundle(ctx context.Context, hash string) (bool, error) {
	n, err := p.rdb.Exists(ctx, bundle.Key(hash)).Result()
	return n == 1, err
}

// PutDeps stores the archive of an app's dependencies (bundle.PackDeps)
// under its content hash; it never changes, so an existing one is kept.
func (p *Publisher) PutDeps(ctx context.Context, hash string, archive []byte) error {
	if err := p.rdb.SetNX(ctx, bundle.DepsKey(hash), archive, 0).Err(); err != nil {
		return fmt.Errorf("put deps %s: %w", hash, err)
	}
	return nil
}

// DeleteDeps deletes the dependency archive hash.
func (p *Publisher) DeleteDeps(ctx context.Context, hash string) error {
	return p.rdb.Del(ctx, bundle.DepsKey(hash)).Err()
}

// HasDeps reports whether Redis holds the dependency archive hash.
func (p *Publisher) HasDeps(ctx context.Context, hash string) (bool, error) {
	n, err := p.rdb.Exists(ctx, bundle.DepsKey(hash)).Result()
	return n == 1, err
}

// SetRoute writes r and announces the change.
func (p *Publisher) SetRoute(ctx context.Context, r *v1.Route) error {
	data, err := proto.Marshal(r)
	if err != nil {
		return err
	}
	if err := p.rdb.Set(ctx, RouteKey(r.GetSlug()), data, 0).Err(); err != nil {
		return fmt.Errorf("set route %s: %w", r.GetSlug(), err)
	}
	return p.rdb.Publish(ctx, Channel, r.GetSlug()).Err()
}

// DeleteRoute removes slug's route and announces the change.
func (p *Publisher) DeleteRoute(ctx context.Context, slug string) error {
	if err := p.rdb.Del(ctx, RouteKey(slug)).Err(); err != nil {
		return fmt.Errorf("delete route %s: %w", slug, err)
	}
	return p.rdb.Publish(ctx, Channel, slug).Err()
}

// Route returns slug's route record, or nil if Redis has none.
func (p *Publisher) Route(ctx context.Context, slug string) (*v1.Route, error) {
	data, err := p.rdb.Get(ctx, RouteKey(slug)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("get route %s: %w", slug, err)
	}
	var r v1.Route
	if err := proto.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode route %s: %w", slug, err)
	}
	return &r, nil
}

// Subscribe calls changed with the slug of every route change until ctx ends.
// It returns once the subscription is active.
func (p *Publisher) Subscribe(ctx context.Context, changed func(slug string)) error {
	sub := p.rdb.Subscribe(ctx, Channel)
	if _, err := sub.Receive(ctx); err != nil {
		sub.Close()
		return fmt.Errorf("subscribe %s: %w", Channel, err)
	}
	go func() {
		defer sub.Close()
		ch := sub.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-ch:
				if !ok {
					return
				}
				changed(m.Payload)
			}
		}
	}()
	return nil
}

// DeleteBundle removes the bundle hash and its compiled modules.
func (p *Publisher) DeleteBundle(ctx context.Context, hash string) error {
	return p.rdb.Del(ctx, bundle.Key(hash), bundle.CompiledKey(hash)).Err()
}

// SetDomain serves app slug at custom domain host and announces it.
func (p *Publisher) SetDomain(ctx context.Context, host, slug string) error {
	if err := p.rdb.Set(ctx, DomainKey(host), slug, 0).Err(); err != nil {
		return fmt.Errorf("set domain %s: %w", host, err)
	}
	return p.rdb.Publish(ctx, Channel, DomainKey(host)).Err()
}

// DeleteDomain stops serving custom domain host and announces it.
func (p *Publisher) DeleteDomain(ctx context.Context, host string) error {
	if err := p.rdb.Del(ctx, DomainKey(host)).Err(); err != nil {
		return fmt.Errorf("delete domain %s: %w", host, err)
	}
	return p.rdb.Publish(ctx, Channel, DomainKey(host)).Err()
}

// Domain returns the slug of the app served at custom domain host, or ""
// if Redis has none.
func (p *Publisher) Domain(ctx context.Context, host string) (string, error) {
	slug, err := p.rdb.Get(ctx, DomainKey(host)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("get domain %s: %w", host, err)
	}
	return slug, nil
}
