package apps

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/controlplane/auth"
	"github.com/gofastapi/gofastapi/controlplane/store"
	"github.com/gofastapi/gofastapi/proto/bundle"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// Deploy implements AppService.Deploy: validate, store the version, publish
// its bundle, point the route at it, then report the URL. Each stage is
// streamed as it completes; a failure ends the stream with an error naming
// the stage (and, for validation, the file and line). With no files, the
// saved draft is deployed.
func (s *Service) Deploy(ctx context.Context, req *connect.Request[v1.DeployRequest], stream *connect.ServerStream[v1.DeployResponse]) error {
	a, err := s.owned(ctx, req.Msg.GetIdOrName())
	if err != nil {
		return err
	}
	entry := a.Entrypoint
	if e := req.Msg.GetEntrypoint(); e != "" {
		entry = e
	}
	files := bundle.FromProto(req.Msg.GetFiles())
	if len(files) == 0 {
		d, err := s.draft(ctx, a.ID)
		if err != nil {
			return s.fail("get draft", err)
		}
		if d == nil {
			return invalid("no files to deploy: send the app's files, or save a draft first")
		}
		files = store.BundleFiles(d.Files)
		if req.Msg.GetEntrypoint() == "" {
			entry = d.Entrypoint
		}
	}
	_, err = s.deploy(ctx, a, files, entry, stream.Send)
	return err
}

// deploy runs the stages of a deploy of files as app a's new version,
// calling send (when not nil) after each, and returns the version's hash.
// The deployed files also become the app's draft.
func (s *Service) deploy(ctx context.Context, a *store.App, files []bundle.File, entry string, send func(*v1.DeployResponse) error) (string, error) {
	defer s.deployStarted(a.ID)()
	start := time.Now()
	report := func(stage v1.DeployStage, msg string, r *v1.DeployResponse) error {
		if send == nil {
			return nil
		}
		if r == nil {
			r = &v1.DeployResponse{}
		}
		r.Stage, r.Message, r.ElapsedMicros = stage, msg, time.Since(start).Microseconds()
		return send(r)
	}
	allowed, err := s.cfg.Imports.AllowedImports(ctx)
	if err != nil {
		return "", s.stageFailed(v1.DeployStage_DEPLOY_STAGE_VALIDATE, "validate", err)
	}
	problems, compiled, err := s.cfg.Validator.CheckCompiled(ctx, files, entry, allowed)
	if err != nil {
		return "", s.stageFailed(v1.DeployStage_DEPLOY_STAGE_VALIDATE, "validate", fmt.Errorf("validate: %w", err))
	}
	if len(problems) > 0 {
		return "", connectError(&invalidFiles{problems: problems})
	}
	if err := report(v1.DeployStage_DEPLOY_STAGE_VALIDATE, fmt.Sprintf("%d file(s) valid", len(files)), nil); err != nil {
		return "", err
	}

	hash := bundle.Hash(files)
	unchanged := hash == a.DeployedVersion && entry == a.Entrypoint
	v := &store.Version{AppID: a.ID, Hash: hash, Entrypoint: entry, Files: store.VersionFiles(files)}
	if len(compiled) > 0 {
		v.Compiled = bundle.Hash(compiled)
	}
	if unchanged {
		// Identical content: nothing to store, publish or re-point.
		msg := "no changes: version " + short(hash) + " is already deployed"
		if err := report(v1.DeployStage_DEPLOY_STAGE_STORE, msg, &v1.DeployResponse{Version: hash, Unchanged: true}); err != nil {
			return "", err
		}
	} else {
		if err := s.cfg.Store.PutVersion(ctx, v); err != nil {
			return "", s.stageFailed(v1.DeployStage_DEPLOY_STAGE_STORE, "store version", err)
		}
		if err := report(v1.DeployStage_DEPLOY_STAGE_STORE, "version "+short(hash)+" stored", &v1.DeployResponse{Version: hash}); err != nil {
			return "", err
		}
	}
	// The files become the draft beside publishing and routing, which are
	// what the app's first request waits for; the deploy ends once both
	// are done.
	drafted := make(chan error, 1)
	go func() {
		drafted <- s.cfg.Store.PutDraft(ctx, &store.Draft{AppID: a.ID, Entrypoint: entry, Hash: hash, Files: v.Files})
	}()

	if _, err := s.cfg.Publisher.PutBundle(ctx, files); err != nil {
		return "", s.stageFailed(v1.DeployStage_DEPLOY_STAGE_PUBLISH, "publish bundle", err)
	}
	if !unchanged && len(compiled) > 0 {
		if err := s.cfg.Publisher.PutCompiled(ctx, hash, compiled); err != nil {
			return "", s.stageFailed(v1.DeployStage_DEPLOY_STAGE_PUBLISH, "publish compiled modules", err)
		}
	}
	if err := report(v1.DeployStage_DEPLOY_STAGE_PUBLISH, "bundle published", &v1.DeployResponse{Version: hash, Unchanged: unchanged}); err != nil {
		return "", err
	}

	if !unchanged {
		if err := s.cfg.Store.SetDeployed(ctx, a.ID, v); err != nil {
			return "", s.stageFailed(v1.DeployStage_DEPLOY_STAGE_ROUTE, "set deployed", err)
		}
		a.DeployedCompiled = v.Compiled
	}
	a.DeployedVersion, a.Entrypoint = hash, entry
	if _, err := s.publishRoute(ctx, a); err != nil {
		return "", s.stageFailed(v1.DeployStage_DEPLOY_STAGE_ROUTE, "publish route", err)
	}
	msg := "route points at " + short(hash)
	if unchanged {
		msg = "no changes: version " + short(hash) + " is already deployed"
	}
	if err := report(v1.DeployStage_DEPLOY_STAGE_ROUTE, msg, &v1.DeployResponse{Version: hash, Unchanged: unchanged}); err != nil {
		return "", err
	}
	if !unchanged {
		s.lifecycle(ctx, a.ID, v1.EventKind_EVENT_KIND_DEPLOYED, hash, "deployed version %s", short(hash))
		if u, err := auth.User(ctx); err == nil {
			s.record(ctx, u, store.ActivityAppDeploy, a.Name, "version "+short(hash))
		}
	}
	if err := <-drafted; err != nil {
		return "", s.stageFailed(v1.DeployStage_DEPLOY_STAGE_LIVE, "save draft", err)
	}
	url := s.cfg.URL(a.Name)
	return hash, report(v1.DeployStage_DEPLOY_STAGE_LIVE, "live at "+url, &v1.DeployResponse{Version: hash, Url: url, Unchanged: unchanged})
}

// stageFailed is what the caller of a deploy that failed at stage gets. An
// error the caller can act on keeps its code and message; an internal one,
// logged by fail, says at which stage the deploy stopped and what the app
// serves now.
func (s *Service) stageFailed(stage v1.DeployStage, op string, err error) error {
	ce := s.fail(op, err)
	if connect.CodeOf(ce) != connect.CodeInternal {
		return ce
	}
	if stage == v1.DeployStage_DEPLOY_STAGE_LIVE {
		return connect.NewError(connect.CodeInternal, errors.New(
			"deploy failed at the live stage: the new version serves, but saving its files as the app's draft failed (an internal error, in the server's log); deploy again to save them"))
	}
	name := strings.ToLower(strings.TrimPrefix(stage.String(), "DEPLOY_STAGE_"))
	return connect.NewError(connect.CodeInternal, fmt.Errorf(
		"deploy failed at the %s stage: an internal error (in the server's log); the app still serves what it served before; deploy again", name))
}
