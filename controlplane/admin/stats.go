package admin

import (
	"context"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// GetStats implements AdminService.GetStats.
func (s *Service) GetStats(ctx context.Context, req *connect.Request[v1.GetStatsRequest]) (*connect.Response[v1.GetStatsResponse], error) {
	if _, err := s.admin(ctx); err != nil {
		return nil, err
	}
	out := &v1.GetStatsResponse{}
	var err error
	if out.Users, out.Admins, err = s.cfg.Store.CountUsers(ctx); err != nil {
		return nil, s.fail("stats", err)
	}
	apps, err := s.cfg.Store.ListApps(ctx, "")
	if err != nil {
		return nil, s.fail("stats", err)
	}
	out.Apps = int64(len(apps))
	for _, a := range apps {
		if a.DeployedVersion != "" {
			out.DeployedApps++
		}
	}
	warm, running := s.cfg.Runners.RunnerStats()
	out.WarmRunners, out.RunningApps = int64(warm), int64(len(running))
	if s.cfg.Templates != nil {
		if out.Templates, err = s.cfg.Templates.CountTemplates(ctx); err != nil {
			return nil, s.fail("stats", err)
		}
	}
	if out.DatabaseStorageBytes, err = s.cfg.Store.StorageBytes(ctx); err != nil {
		return nil, s.fail("stats", err)
	}
	if out.ActiveSessions, err = s.cfg.Store.CountActiveSessions(ctx); err != nil {
		return nil, s.fail("stats", err)
	}
	if s.cfg.UserStorage != nil {
		if out.UserDatabases, out.UserDatabaseStorageBytes, err = s.cfg.UserStorage.UserStorage(ctx); err != nil {
			return nil, s.fail("stats", err)
		}
	}
	return connect.NewResponse(out), nil
}

// ListActivity implements AdminService.ListActivity.
func (s *Service) ListActivity(ctx context.Context, req *connect.Request[v1.ListActivityRequest]) (*connect.Response[v1.ListActivityResponse], error) {
	if _, err := s.admin(ctx); err != nil {
		return nil, err
	}
	n := int64(req.Msg.GetLimit())
	if n <= 0 {
		n = 50
	}
	n = min(n, 500)
	as, err := s.cfg.Store.ListActivity(ctx, n)
	if err != nil {
		return nil, s.fail("list activity", err)
	}
	out := &v1.ListActivityResponse{}
	for _, a := range as {
		out.Events = append(out.Events, &v1.ActivityEvent{
			Time: timestamppb.New(a.Time), Actor: a.Actor, Kind: a.Kind, Subject: a.Subject, Detail: a.Detail,
		})
	}
	return connect.NewResponse(out), nil
}
