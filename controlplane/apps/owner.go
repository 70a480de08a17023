package apps

import (
	"context"
	"errors"
	"fmt"

	"github.com/gofastapi/gofastapi/controlplane/store"
)

// checkAppLimit enforces owner u's app limit on a, just created. The app
// is inserted first and counted after, and removed again if it is one too
// many: two creates at once can then both fail, but never both succeed
// past the limit, as a count before the insert would allow.
func (s *Service) checkAppLimit(ctx context.Context, u *store.User, a *store.App) error {
	limit := u.AppLimit()
	if limit == 0 {
		return nil
	}
	n, err := s.cfg.Store.CountApps(ctx, u.ID)
	if err != nil {
		return err
	}
	if n <= int64(limit) {
		return nil
	}
	if err := s.cfg.Store.DeleteApp(ctx, a.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("remove app over the limit: %w", err)
	}
	return &limitError{limit: limit, tier: u.EffectiveLimits().Tier}
}

// DeleteUserData deletes every app of userID the way DeleteApp does
// (records, route, which releases the runner, logs, unused bundles) and
// reports the apps, versions, bundles and log streams removed. It
// implements admin.UserData.
func (s *Service) DeleteUserData(ctx context.Context, userID string) (map[string]int64, error) {
	apps, err := s.cfg.Store.ListApps(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{"apps": 0, "versions": 0, "bundles": 0, "dependency archives": 0, "logs": 0}
	for _, a := range apps {
		r, err := s.removeApp(ctx, a)
		if err != nil {
			return out, fmt.Errorf("delete app %s: %w", a.Name, err)
		}
		out["apps"]++
		out["versions"] += r.versions
		out["bundles"] += r.bundles
		out["dependency archives"] += r.deps
		out["logs"] += r.logs
	}
	return out, nil
}
