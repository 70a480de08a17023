package apps

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/gofastapi/gofastapi/controlplane/store"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// Route returns the route of the app called slug, or nil if there is no such
// deployed app. When Redis has lost the route, its bundle or its
// dependencies (Redis is only a cache), they are rebuilt from the platform
// database first.
func (s *Service) Route(ctx context.Context, slug string) (*v1.Route, error) {
	r, err := s.cfg.Publisher.Route(ctx, slug)
	if err != nil {
		return nil, err
	}
	if r != nil {
		ok, err := s.cfg.Publisher.HasBundle(ctx, r.GetVersion())
		if err != nil {
			return nil, err
		}
		if ok {
			if err := s.publishDeps(ctx, r.GetDeps()); err != nil {
				return nil, err
			}
			return r, nil
		}
	}
	return s.rebuild(ctx, slug)
}

// rebuild republishes the app called slug, whose route or bundle Redis
// has lost, and returns its route; nil if there is no such deployed app.
func (s *Service) rebuild(ctx context.Context, slug string) (*v1.Route, error) {
	a, err := s.cfg.Store.AppByName(ctx, slug)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if a.DeployedVersion == "" {
		return nil, nil
	}
	return s.republish(ctx, a)
}

// Resync rebuilds the bundles and routes of every deployed app that Redis
// lacks, for example after Redis restarted empty.
func (s *Service) Resync(ctx context.Context) (int, error) {
	apps, err := s.cfg.Store.ListApps(ctx, "")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, a := range apps {
		if a.DeployedVersion == "" {
			continue
		}
		r, err := s.cfg.Publisher.Route(ctx, a.Name)
		if err != nil {
			return n, err
		}
		ok, err := s.cfg.Publisher.HasBundle(ctx, a.DeployedVersion)
		if err != nil {
			return n, err
		}
		if r != nil && r.GetVersion() == a.DeployedVersion && r.GetEnvRev() == a.EnvRev && ok {
			if err := s.publishDeps(ctx, a.DeployedDeps); err != nil {
				return n, fmt.Errorf("resync %s: %w", a.Name, err)
			}
			continue
		}
		if _, err := s.republish(ctx, a); err != nil {
			return n, fmt.Errorf("resync %s: %w", a.Name, err)
		}
		n++
	}
	return n, nil
}

func (s *Service) republish(ctx context.Context, a *store.App) (*v1.Route, error) {
	v, err := s.cfg.Store.Version(ctx, a.ID, a.DeployedVersion)
	if err != nil {
		return nil, fmt.Errorf("version %s of %s: %w", a.DeployedVersion, a.Name, err)
	}
	if _, err := s.cfg.Publisher.PutBundle(ctx, store.BundleFiles(v.Files)); err != nil {
		return nil, err
	}
	if err := s.publishDeps(ctx, a.DeployedDeps); err != nil {
		return nil, err
	}
	r, err := s.publishRoute(ctx, a)
	if err != nil {
		return nil, err
	}
	// A delete may have removed the app between the read above and the
	// write: then the route just written must go again.
	if _, err := s.cfg.Store.AppByName(ctx, a.Name); errors.Is(err, store.ErrNotFound) {
		return nil, s.cfg.Publisher.DeleteRoute(ctx, a.Name)
	}
	return r, nil
}

// route is the route of deployed app a, with its environment sealed in
// it (see Env) and its owner's request limit.
func (s *Service) route(ctx context.Context, a *store.App) (*v1.Route, error) {
	owner, err := s.cfg.Store.UserByID(ctx, a.OwnerID)
	if err != nil {
		return nil, fmt.Errorf("owner of %s: %w", a.Name, err)
	}
	r := &v1.Route{AppId: a.ID, Slug: a.Name, Version: a.DeployedVersion, Entrypoint: a.Entrypoint, OwnerId: a.OwnerID,
		EnvRev: a.EnvRev, Title: a.Name, Description: a.Description, Compiled: a.DeployedCompiled,
		Deps:                   a.DeployedDeps,
		OwnerRequestsPerMinute: int32(owner.RequestLimit())}
	env, err := s.appEnv(ctx, a)
	if err != nil {
		return nil, err
	}
	if len(env) > 0 {
		b, err := proto.Marshal(&v1.AppEnv{Vars: env})
		if err != nil {
			return nil, err
		}
		if r.SealedEnv, err = s.cfg.Secrets.Seal(b, routeEnvLabel(a.ID, a.EnvRev)); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// publishRoute writes deployed app a's route (see route), which tells the
// edge of the change.
func (s *Service) publishRoute(ctx context.Context, a *store.App) (*v1.Route, error) {
	r, err := s.route(ctx, a)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Publisher.SetRoute(ctx, r); err != nil {
		return nil, err
	}
	return r, nil
}

// publishDeps makes sure Redis has the dependency archive archive, if
// there is one.
func (s *Service) publishDeps(ctx context.Context, archive string) error {
	if archive == "" || s.cfg.Deps == nil {
		return nil
	}
	return s.cfg.Deps.Publish(ctx, archive)
}

func routeEnvLabel(appID, rev string) string { return "route-env:" + appID + ":" + rev }

// dropBundles deletes the bundles of hashes that no version uses any more
// and returns how many it deleted.
func (s *Service) dropBundles(ctx context.Context, hashes []string) int64 {
	var n int64
	for _, h := range hashes {
		if used, err := s.cfg.Store.HashInUse(ctx, h); err == nil && !used {
			if err := s.cfg.Publisher.DeleteBundle(ctx, h); err != nil {
				s.cfg.Logger.Warn("delete bundle", "hash", h, "err", err)
				continue
			}
			n++
		}
	}
	return n
}

// RepublishOwnerRoutes writes the routes of the deployed apps of userID
// again, with their owner's request limit as it is now. It implements
// admin.OwnerRoutes. A deploy, rename or delete may run meanwhile, so each
// app is read again after its route is written, and its route written
// again (or removed) until the two agree.
func (s *Service) RepublishOwnerRoutes(ctx context.Context, userID string) error {
	apps, err := s.cfg.Store.ListApps(ctx, userID)
	if err != nil {
		return err
	}
	for _, a := range apps {
		// A few rounds at most: each is a change made meanwhile.
		for round := 0; a != nil && a.DeployedVersion != "" && round < 5; round++ {
			r, err := s.publishRoute(ctx, a)
			if err != nil {
				return fmt.Errorf("route of %s: %w", a.Name, err)
			}
			now, err := s.cfg.Store.AppByID(ctx, a.ID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err != nil || now.Name != r.GetSlug() {
				// Deleted or renamed meanwhile: the route just written
				// under the old name must go (unless another app has
				// taken the name since).
				if err := s.dropRouteOf(ctx, r.GetSlug(), a.ID); err != nil {
					return err
				}
			} else if now.DeployedVersion == r.GetVersion() && now.EnvRev == r.GetEnvRev() && now.Description == r.GetDescription() {
				now = nil // in place
			}
			a = now
		}
	}
	return nil
}

// dropRouteOf deletes the route under slug if it is app appID's.
func (s *Service) dropRouteOf(ctx context.Context, slug, appID string) error {
	r, err := s.cfg.Publisher.Route(ctx, slug)
	if err != nil || r == nil || r.GetAppId() != appID {
		return err
	}
	return s.cfg.Publisher.DeleteRoute(ctx, slug)
}
