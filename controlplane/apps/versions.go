package apps

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gofastapi/gofastapi/controlplane/auth"
	"github.com/gofastapi/gofastapi/controlplane/store"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

var hashPrefixRE = regexp.MustCompile(`^[0-9a-fA-F]{6,64}$`)

// ListVersions implements AppService.ListVersions.
func (s *Service) ListVersions(ctx context.Context, req *connect.Request[v1.ListVersionsRequest]) (*connect.Response[v1.ListVersionsResponse], error) {
	a, err := s.owned(ctx, req.Msg.GetIdOrName())
	if err != nil {
		return nil, err
	}
	n := int64(req.Msg.GetLimit())
	if n <= 0 || n > 100 {
		n = 20
	}
	vs, err := s.cfg.Store.ListVersions(ctx, a.ID, n)
	if err != nil {
		return nil, s.fail("list versions", err)
	}
	out := &v1.ListVersionsResponse{}
	for _, v := range vs {
		out.Versions = append(out.Versions, versionInfo(a, v))
	}
	return connect.NewResponse(out), nil
}

// GetVersion implements AppService.GetVersion.
func (s *Service) GetVersion(ctx context.Context, req *connect.Request[v1.GetVersionRequest]) (*connect.Response[v1.GetVersionResponse], error) {
	a, err := s.owned(ctx, req.Msg.GetIdOrName())
	if err != nil {
		return nil, err
	}
	v, err := s.versionByPrefix(ctx, a, req.Msg.GetVersion())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.GetVersionResponse{Info: versionInfo(a, v), Files: versionFiles(v)}), nil
}

// Rollback implements AppService.Rollback: the route is re-pointed at a
// stored version (its bundle republished if Redis lost it), nothing is
// rebuilt or validated again.
func (s *Service) Rollback(ctx context.Context, req *connect.Request[v1.RollbackRequest]) (*connect.Response[v1.RollbackResponse], error) {
	a, err := s.owned(ctx, req.Msg.GetIdOrName())
	if err != nil {
		return nil, err
	}
	if a.DeployedVersion == "" {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("app "+a.Name+" has never been deployed: there is nothing to roll back"))
	}
	var target *store.Version
	if p := req.Msg.GetVersion(); p != "" {
		if target, err = s.versionByPrefix(ctx, a, p); err != nil {
			return nil, err
		}
	} else if target, err = s.previousVersion(ctx, a); err != nil {
		return nil, err
	}
	if target.Hash == a.DeployedVersion && target.Entrypoint == a.Entrypoint {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("version "+short(target.Hash)+" is already the deployed version"))
	}
	prev := a.DeployedVersion
	if err := s.pointAt(ctx, a, target); err != nil {
		return nil, s.fail("roll back", err)
	}
	s.lifecycle(ctx, a.ID, v1.EventKind_EVENT_KIND_ROLLED_BACK, target.Hash, "rolled back from %s to %s", short(prev), short(target.Hash))
	if u, err := auth.User(ctx); err == nil {
		s.record(ctx, u, store.ActivityAppDeploy, a.Name, "rollback to "+short(target.Hash))
	}
	return connect.NewResponse(&v1.RollbackResponse{Version: target.Hash, Previous: prev}), nil
}

// pointAt makes stored version v app a's deployed version: its bundle
// and dependencies are republished if Redis lost them, then a's route
// points at it. Nothing is rebuilt or validated again.
func (s *Service) pointAt(ctx context.Context, a *store.App, v *store.Version) error {
	if _, err := s.cfg.Publisher.PutBundle(ctx, store.BundleFiles(v.Files)); err != nil {
		return fmt.Errorf("publish bundle: %w", err)
	}
	if err := s.publishDeps(ctx, v.Deps); err != nil {
		return fmt.Errorf("publish dependencies: %w", err)
	}
	if err := s.cfg.Store.SetDeployed(ctx, a.ID, v); err != nil {
		return fmt.Errorf("set deployed: %w", err)
	}
	a.DeployedVersion, a.Entrypoint, a.DeployedCompiled, a.DeployedDeps = v.Hash, v.Entrypoint, v.Compiled, v.Deps
	if _, err := s.publishRoute(ctx, a); err != nil {
		return fmt.Errorf("publish route: %w", err)
	}
	return nil
}

// previousVersion returns the version deployed before a's current one.
func (s *Service) previousVersion(ctx context.Context, a *store.App) (*store.Version, error) {
	vs, err := s.cfg.Store.ListVersions(ctx, a.ID, 0)
	if err != nil {
		return nil, s.fail("list versions", err)
	}
	for i, v := range vs {
		if v.Hash == a.DeployedVersion {
			if i+1 < len(vs) {
				return s.cfg.Store.Version(ctx, a.ID, vs[i+1].Hash)
			}
			break
		}
	}
	return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("app "+a.Name+" has no version deployed before "+short(a.DeployedVersion)+": name the version to roll back to (see ListVersions)"))
}

func (s *Service) versionByPrefix(ctx context.Context, a *store.App, prefix string) (*store.Version, error) {
	if !hashPrefixRE.MatchString(prefix) {
		return nil, invalid("version %q must be a content hash or a prefix of one, at least 6 hex digits (see ListVersions)", prefix)
	}
	v, err := s.cfg.Store.VersionByPrefix(ctx, a.ID, prefix)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, connect.NewError(connect.CodeNotFound, errors.New("app "+a.Name+" has no version "+prefix))
	case errors.Is(err, store.ErrAmbiguous):
		return nil, invalid("version prefix %s matches more than one version of %s: give more digits", prefix, a.Name)
	case err != nil:
		return nil, s.fail("get version", err)
	}
	return v, nil
}

func versionInfo(a *store.App, v *store.Version) *v1.VersionInfo {
	t := v.DeployedAt
	if t.IsZero() {
		t = v.CreatedAt
	}
	info := &v1.VersionInfo{Version: v.Hash, CreatedAt: timestamppb.New(t), Entrypoint: v.Entrypoint,
		Current: v.Hash == a.DeployedVersion && v.Entrypoint == a.Entrypoint, Packages: packagesProto(v.Packages)}
	for _, f := range v.Files {
		info.Files = append(info.Files, &v1.FileInfo{Name: f.Name, Size: int64(len(f.Content))})
	}
	return info
}

func short(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	return hash
}
