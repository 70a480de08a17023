package apps

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/controlplane/auth"
	"github.com/gofastapi/gofastapi/controlplane/store"
	"github.com/gofastapi/gofastapi/proto/bundle"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// CloneApp implements AppService.CloneApp: a new app, owned by the caller,
// whose draft is the source's deployed version or draft. Variables are
// copied with their values, secrets by name only; the clone is deployed
// when asked.
func (s *Service) CloneApp(ctx context.Context, req *connect.Request[v1.CloneAppRequest]) (*connect.Response[v1.CloneAppResponse], error) {
	u, err := auth.User(ctx)
	if err != nil {
		return nil, err
	}
	src, err := s.owned(ctx, req.Msg.GetIdOrName())
	if err != nil {
		return nil, err
	}
	if msg := checkName(req.Msg.GetNewName()); msg != "" {
		return nil, invalid("%s", msg)
	}
	files, entry, err := s.cloneFiles(ctx, src, req.Msg.GetSource())
	if err != nil {
		return nil, err
	}
	a := &store.App{OwnerID: u.ID, Name: req.Msg.GetNewName(), Description: src.Description, Notes: src.Notes,
		Framework: src.Framework, Mode: src.Mode, Entrypoint: entry, TemplateID: src.TemplateID}
	for _, v := range src.Env {
		if v.Secret {
			v.Sealed = nil // sealed for the source app only; the owner sets it again
		}
		a.Env = append(a.Env, v)
	}
	if len(a.Env) > 0 {
		a.EnvRev = store.NewID()
	}
	if err := s.cfg.Store.CreateApp(ctx, a); err != nil {
		return nil, s.fail("create app", err)
	}
	if err := s.checkAppLimit(ctx, u, a); err != nil {
		return nil, s.fail("create app", err)
	}
	d := &store.Draft{AppID: a.ID, Entrypoint: entry, Hash: bundle.Hash(files), Files: store.VersionFiles(files)}
	if err := s.cfg.Store.PutDraft(ctx, d); err != nil {
		return nil, s.fail("save draft", err)
	}
	s.record(ctx, u, store.ActivityAppCreate, a.Name, "clone of "+src.Name)
	s.event(ctx, a.ID, "cloned from %s", src.Name)
	if req.Msg.GetDeploy() {
		if _, err := s.deploy(ctx, a, files, entry, true, nil); err != nil {
			return nil, err
		}
		if a, err = s.cfg.Store.AppByID(ctx, a.ID); err != nil {
			return nil, s.fail("get app", err)
		}
	}
	return connect.NewResponse(&v1.CloneAppResponse{App: s.appProto(a, d)}), nil
}

// cloneFiles returns the files a clone of src starts from.
func (s *Service) cloneFiles(ctx context.Context, src *store.App, from v1.CloneSource) ([]bundle.File, string, error) {
	d, err := s.draft(ctx, src.ID)
	if err != nil {
		return nil, "", s.fail("get draft", err)
	}
	useDraft := d != nil && (from == v1.CloneSource_CLONE_SOURCE_DRAFT || src.DeployedVersion == "")
	if useDraft {
		return store.BundleFiles(d.Files), d.Entrypoint, nil
	}
	if src.DeployedVersion == "" {
		return nil, "", connect.NewError(connect.CodeFailedPrecondition, errors.New("app "+src.Name+" has no files yet: save a draft or deploy it before cloning"))
	}
	v, err := s.cfg.Store.Version(ctx, src.ID, src.DeployedVersion)
	if err != nil {
		return nil, "", s.fail("get version", err)
	}
	return store.BundleFiles(v.Files), v.Entrypoint, nil
}

// AppFiles returns the files of ownerID's app idOrName that a template is
// saved from: its draft, or its deployed version if it has no draft.
func (s *Service) AppFiles(ctx context.Context, ownerID, idOrName string) (*Template, error) {
	a, err := s.cfg.Store.OwnedApp(ctx, ownerID, idOrName)
	if err != nil {
		return nil, err
	}
	files, entry, err := s.cloneFiles(ctx, a, v1.CloneSource_CLONE_SOURCE_DRAFT)
	if err != nil {
		return nil, err
	}
	return &Template{Framework: a.Framework, Mode: a.Mode, Entrypoint: entry, Files: files}, nil
}
