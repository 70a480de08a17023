package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gofastapi/gofastapi/controlplane/auth"
	"github.com/gofastapi/gofastapi/controlplane/store"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// ListUsers implements AdminService.ListUsers.
func (s *Service) ListUsers(ctx context.Context, req *connect.Request[v1.ListUsersRequest]) (*connect.Response[v1.ListUsersResponse], error) {
	if _, err := s.admin(ctx); err != nil {
		return nil, err
	}
	users, err := s.cfg.Store.ListUsers(ctx)
	if err != nil {
		return nil, s.fail("list users", err)
	}
	apps, err := s.cfg.Store.ListApps(ctx, "")
	if err != nil {
		return nil, s.fail("list users", err)
	}
	_, running := s.cfg.Runners.RunnerStats()
	isRunning := map[string]bool{}
	for _, id := range running {
		isRunning[id] = true
	}
	type counts struct{ apps, running int32 }
	byOwner := map[string]*counts{}
	for _, a := range apps {
		c := byOwner[a.OwnerID]
		if c == nil {
			c = &counts{}
			byOwner[a.OwnerID] = c
		}
		c.apps++
		if isRunning[a.ID] {
			c.running++
		}
	}
	out := &v1.ListUsersResponse{}
	for _, u := range users {
		sum := &v1.UserSummary{User: auth.UserProto(u), Limits: limitsProto(u.EffectiveLimits())}
		if c := byOwner[u.ID]; c != nil {
			sum.AppCount, sum.RunningApps = c.apps, c.running
		}
		if !u.LastActiveAt.IsZero() {
			sum.LastActiveAt = timestamppb.New(u.LastActiveAt)
		}
		out.Users = append(out.Users, sum)
	}
	return connect.NewResponse(out), nil
}

// CreateUser implements AdminService.CreateUser.
func (s *Service) CreateUser(ctx context.Context, req *connect.Request[v1.CreateUserRequest]) (*connect.Response[v1.CreateUserResponse], error) {
	me, err := s.admin(ctx)
	if err != nil {
		return nil, err
	}
	m := req.Msg
	u, err := auth.NewUser(m.GetUsername(), m.GetPassword(), m.GetEmail())
	if err != nil {
		return nil, s.fail("create user", err)
	}
	if err := s.cfg.Store.CreateUser(ctx, u); err != nil {
		return nil, s.fail("create user", err)
	}
	detail := ""
	if m.GetAdmin() && !u.Admin {
		if _, err := s.cfg.Store.SetAdmin(ctx, u.ID, true); err != nil {
			return nil, s.fail("create user", fmt.Errorf("promote new user: %w", err))
		}
		u.Admin, detail = true, "as admin"
	}
	s.record(ctx, me, store.ActivityUserCreate, u.Username, detail)
	return connect.NewResponse(&v1.CreateUserResponse{User: auth.UserProto(u)}), nil
}

// SetAdmin implements AdminService.SetAdmin.
func (s *Service) SetAdmin(ctx context.Context, req *connect.Request[v1.SetAdminRequest]) (*connect.Response[v1.SetAdminResponse], error) {
	me, err := s.admin(ctx)
	if err != nil {
		return nil, err
	}
	u, err := s.user(ctx, req.Msg.GetUser())
	if err != nil {
		return nil, err
	}
	admin := req.Msg.GetAdmin()
	if u.ID == me.ID && !admin {
		return nil, s.fail("set admin", errSelfDemote)
	}
	changed, err := s.cfg.Store.SetAdmin(ctx, u.ID, admin)
	if errors.Is(err, store.ErrLastAdmin) {
		return nil, s.fail("set admin", &lastAdminError{username: u.Username})
	} else if err != nil {
		return nil, s.fail("set admin", err)
	}
	if changed {
		// Admins' apps have no request limit: the edge learns the new
		// role from the routes.
		if err := s.republish(ctx, u.ID); err != nil {
			return nil, s.fail("set admin: republish the user's routes", err)
		}
		kind := store.ActivityUserDemote
		if admin {
			kind = store.ActivityUserPromote
		}
		s.record(ctx, me, kind, u.Username, "")
	}
	u.Admin = admin
	return connect.NewResponse(&v1.SetAdminResponse{User: auth.UserProto(u), Changed: changed}), nil
}

// SetLimits implements AdminService.SetLimits.
func (s *Service) SetLimits(ctx context.Context, req *connect.Request[v1.SetLimitsRequest]) (*connect.Response[v1.SetLimitsResponse], error) {
	me, err := s.admin(ctx)
	if err != nil {
		return nil, err
	}
	u, err := s.user(ctx, req.Msg.GetUser())
	if err != nil {
		return nil, err
	}
	l, err := newLimits(u.EffectiveLimits(), req.Msg)
	if err != nil {
		return nil, s.fail("set limits", err)
	}
	if err := s.cfg.Store.SetLimits(ctx, u.ID, l); err != nil {
		return nil, s.fail("set limits", err)
	}
	if err := s.republish(ctx, u.ID); err != nil {
		return nil, s.fail("set limits: republish the user's routes", err)
	}
	s.record(ctx, me, store.ActivityUserLimits, u.Username, describeLimits(l))
	return connect.NewResponse(&v1.SetLimitsResponse{Limits: limitsProto(l)}), nil
}

// newLimits applies the request to the user's current limits.
func newLimits(cur store.Limits, m *v1.SetLimitsRequest) (store.Limits, error) {
	l := cur
	if t := m.GetTier(); t != "" {
		tl, ok := store.TierLimits(t)
		if !ok {
			return l, invalid("tier %q does not exist: use one of %s, or set the numbers", t, strings.Join(store.TierNames(), ", "))
		}
		l = tl
	}
	if m.Tier == "" && m.Apps == nil && m.Databases == nil && m.StorageBytes == nil && m.RequestsPerMinute == nil {
		return l, invalid("name a tier (%s) or set apps, databases, storage_bytes or requests_per_minute", strings.Join(store.TierNames(), ", "))
	}
	custom := false
	if m.Apps != nil {
		if m.GetApps() < 0 {
			return l, invalid("apps must not be negative (0 means no limit)")
		}
		l.Apps, custom = int(m.GetApps()), true
	}
	if m.Databases != nil {
		if m.GetDatabases() < 0 {
			return l, invalid("databases must not be negative (0 means no limit)")
		}
		l.Databases, custom = int(m.GetDatabases()), true
	}
	if m.StorageBytes != nil {
		if m.GetStorageBytes() < 0 {
			return l, invalid("storage_bytes must not be negative (0 means no limit)")
		}
		l.StorageBytes, custom = m.GetStorageBytes(), true
	}
	if m.RequestsPerMinute != nil {
		if m.GetRequestsPerMinute() < 0 {
			return l, invalid("requests_per_minute must not be negative (0 means no limit)")
		}
		l.RequestsPerMinute, custom = int(m.GetRequestsPerMinute()), true
	}
	if custom {
		l.Tier = store.TierCustom
	}
	return l, nil
}

func describeLimits(l store.Limits) string {
	n := func(v int64) string {
		if v == 0 {
			return "unlimited"
		}
		return fmt.Sprint(v)
	}
	storage := "unlimited"
	if l.StorageBytes > 0 {
		storage = sizeText(l.StorageBytes)
	}
	return fmt.Sprintf("tier %s: apps %s, databases %s, storage %s, requests a minute %s", l.Tier, n(int64(l.Apps)), n(int64(l.Databases)), storage, n(int64(l.RequestsPerMinute)))
}

// sizeText writes n bytes in the largest binary unit that divides it
// evenly, or in bytes.
func sizeText(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}

func limitsProto(l store.Limits) *v1.Limits {
	return &v1.Limits{Tier: l.Tier, Apps: int32(l.Apps), Databases: int32(l.Databases), StorageBytes: l.StorageBytes,
		RequestsPerMinute: int32(l.RequestsPerMinute)}
}

// republish has the user's app routes written again, when the platform
// publishes routes here (Config.Routes).
func (s *Service) republish(ctx context.Context, userID string) error {
	if s.cfg.Routes == nil {
		return nil
	}
	return s.cfg.Routes.RepublishOwnerRoutes(ctx, userID)
}
