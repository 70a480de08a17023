package apps

import (
	"context"
	"fmt"
	"time"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/controlplane/store"
	"github.com/gofastapi/gofastapi/proto/bundle"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// Deploy implements AppService.Deploy: validate, store the version, publish
// its bundle, point the route at it, then report the URL. Each stage is
// streamed as it completes; a failure ends the stream with an error naming
// the stage (and, for validation, the file and line).
func (s *Service) Deploy(ctx context.Context, req *connect.Request[v1.DeployRequest], stream *connect.ServerStream[v1.DeployResponse]) error {
	start := time.Now()
	a, err := s.owned(ctx, req.Msg.GetIdOrName())
	if err != nil {
		return err
	}
	send := func(stage v1.DeployStage, msg string, r *v1.DeployResponse) error {
		if r == nil {
			r = &v1.DeployResponse{}
		}
		r.Stage, r.Message, r.ElapsedMicros = stage, msg, time.Since(start).Microseconds()
		return stream.Send(r)
	}
	entry := a.Entrypoint
	if e := req.Msg.GetEntrypoint(); e != "" {
		entry = e
	}
	files := make([]bundle.File, len(req.Msg.GetFiles()))
	for i, f := range req.Msg.GetFiles() {
		files[i] = bundle.File{Name: f.GetName(), Content: f.GetContent()}
	}

	allowed, err := s.cfg.Imports.AllowedImports(ctx)
	if err != nil {
		return s.fail("validate", err)
	}
	problems, err := s.cfg.Validator.Check(ctx, files, entry, allowed)
	if err != nil {
		return s.fail("validate", fmt.Errorf("validate: %w", err))
	}
	if len(problems) > 0 {
		return connectError(&invalidFiles{problems: problems})
	}
	if err := send(v1.DeployStage_DEPLOY_STAGE_VALIDATE, fmt.Sprintf("%d file(s) valid", len(files)), nil); err != nil {
		return err
	}

	hash := bundle.Hash(files)
	unchanged := hash == a.DeployedVersion && entry == a.Entrypoint
	v := &store.Version{AppID: a.ID, Hash: hash, Entrypoint: entry}
	for _, f := range files {
		v.Files = append(v.Files, store.VersionFile{Name: f.Name, Content: f.Content})
	}
	if err := s.cfg.Store.PutVersion(ctx, v); err != nil {
		return s.fail("store version", err)
	}
	if err := send(v1.DeployStage_DEPLOY_STAGE_STORE, "version "+hash[:12]+" stored", &v1.DeployResponse{Version: hash}); err != nil {
		return err
	}

	if _, err := s.cfg.Publisher.PutBundle(ctx, files); err != nil {
		return s.fail("publish bundle", err)
	}
	if err := send(v1.DeployStage_DEPLOY_STAGE_PUBLISH, "bundle published", &v1.DeployResponse{Version: hash}); err != nil {
		return err
	}

	if err := s.cfg.Store.SetDeployed(ctx, a.ID, hash, entry); err != nil {
		return s.fail("set deployed", err)
	}
	route := &v1.Route{AppId: a.ID, Slug: a.Name, Version: hash, Entrypoint: entry, OwnerId: a.OwnerID}
	if err := s.cfg.Publisher.SetRoute(ctx, route); err != nil {
		return s.fail("set route", err)
	}
	msg := "route points at " + hash[:12]
	if unchanged {
		msg = "no changes: version " + hash[:12] + " is already deployed"
	}
	if err := send(v1.DeployStage_DEPLOY_STAGE_ROUTE, msg, &v1.DeployResponse{Version: hash, Unchanged: unchanged}); err != nil {
		return err
	}
	if !unchanged {
		s.event(ctx, a.ID, "deployed version %s", hash[:12])
		if u, err := caller(ctx); err == nil {
			s.record(ctx, u, store.ActivityAppDeploy, a.Name, "version "+hash[:12])
		}
	}
	url := s.cfg.URL(a.Name)
	return send(v1.DeployStage_DEPLOY_STAGE_LIVE, "live at "+url, &v1.DeployResponse{Version: hash, Url: url, Unchanged: unchanged})
}
