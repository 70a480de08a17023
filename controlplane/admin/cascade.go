package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/controlplane/store"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// UserData is one component's share of a user's data, outside the user
// document: DeleteUser asks each in turn to delete a user's data.
//
// Implementations today: the apps service (apps and, through them,
// versions, drafts, env vars and secrets, bundles, routes, which releases
// their runners, custom domains, logs, events, cold start records and
// metrics), the templates service (templates the user saved), the
// databases service (per-user databases and their credentials) and the
// assistant (the user's provider settings and sealed key, and their
// stored conversations). The admin service itself removes sessions and the
// user's own activity entries. Every future owner of user data must
// implement UserData and be added to Config.UserData in the wiring, or
// DeleteUser leaves that data behind.
type UserData interface {
	// DeleteUserData removes everything userID owns of this component's
	// kinds, wherever it is kept (platform database, Redis, running
	// runners), and returns how many of each kind it removed, for
	// example {"apps": 2, "versions": 5}. It must succeed when called
	// again after a partial failure, and when there is nothing left.
	DeleteUserData(ctx context.Context, userID string) (map[string]int64, error)
}

// DeleteUser implements AdminService.DeleteUser.
func (s *Service) DeleteUser(ctx context.Context, req *connect.Request[v1.DeleteUserRequest]) (*connect.Response[v1.DeleteUserResponse], error) {
	me, err := s.admin(ctx)
	if err != nil {
		return nil, err
	}
	u, err := s.user(ctx, req.Msg.GetUser())
	if err != nil {
		return nil, err
	}
	if u.ID == me.ID {
		return nil, s.fail("delete user", errSelfDelete)
	}
	// An admin is demoted first: that is where the last admin is refused,
	// before anything of theirs is gone.
	if u.Admin {
		if _, err := s.cfg.Store.SetAdmin(ctx, u.ID, false); errors.Is(err, store.ErrLastAdmin) {
			return nil, s.fail("delete user", &lastAdminError{username: u.Username})
		} else if err != nil {
			return nil, s.fail("delete user", err)
		}
	}
	removed, err := s.deleteUser(ctx, u)
	if err != nil {
		return nil, s.fail("delete user", err)
	}
	var parts []string
	for _, r := range removed {
		parts = append(parts, fmt.Sprintf("%d %s", r.GetCount(), r.GetKind()))
	}
	s.record(ctx, me, store.ActivityUserDelete, u.Username, strings.Join(parts, ", "))
	s.cfg.Logger.Info("user deleted", "user", u.Username, "by", me.Username, "removed", strings.Join(parts, ", "))
	return connect.NewResponse(&v1.DeleteUserResponse{Username: u.Username, Removed: removed}), nil
}

// deleteUser locks u out, deletes their data and finally their user
// document. Sessions go right after the lock, so nothing new of theirs can
// start while the rest is deleted.
func (s *Service) deleteUser(ctx context.Context, u *store.User) ([]*v1.RemovedData, error) {
	var removed []*v1.RemovedData
	add := func(kind string, n int64) {
		for _, r := range removed {
			if r.Kind == kind {
				r.Count += n
				return
			}
		}
		removed = append(removed, &v1.RemovedData{Kind: kind, Count: n})
	}
	stop := func(step string, err error) ([]*v1.RemovedData, error) {
		return nil, &partialDeleteError{username: u.Username, step: step, err: err}
	}
	if err := s.cfg.Store.MarkDeleting(ctx, u.ID); err != nil {
		return stop("locking the account", err)
	}
	n, err := s.cfg.Store.DeleteUserSessions(ctx, u.ID, "")
	if err != nil {
		return stop("sessions", err)
	}
	add("sessions", n)
	for _, d := range s.cfg.UserData {
		counts, err := d.DeleteUserData(ctx, u.ID)
		if err != nil {
			return stop("their data", fmt.Errorf("%T: %w", d, err))
		}
		kinds := make([]string, 0, len(counts))
		for k := range counts {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		for _, k := range kinds {
			add(k, counts[k])
		}
	}
	if n, err = s.cfg.Store.DeleteActivityOf(ctx, u.ID); err != nil {
		return stop("activity", err)
	}
	add("activity", n)
	if err := s.cfg.Store.DeleteUser(ctx, u.ID); err != nil {
		return stop("the user record", err)
	}
	add("user", 1)
	return removed, nil
}
