package apps

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/controlplane/auth"
	"github.com/gofastapi/gofastapi/controlplane/deps"
	"github.com/gofastapi/gofastapi/controlplane/store"
	"github.com/gofastapi/gofastapi/controlplane/validate"
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
	_, err = s.deploy(ctx, a, files, entry, !req.Msg.GetNoWarm(), stream.Send)
	return err
}

// deploy runs the stages of a deploy of files as app a's new version,
// calling send (when not nil) after each, and returns the version's hash.
// The deployed files also become the app's draft. Without warm, the warm
// stage is skipped.
func (s *Service) deploy(ctx context.Context, a *store.App, files []bundle.File, entry string, warm bool, send func(*v1.DeployResponse) error) (string, error) {
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
	checked, err := s.checkFiles(ctx, files, entry, true)
	if err != nil {
		return "", s.stageFailed(v1.DeployStage_DEPLOY_STAGE_VALIDATE, "validate", fmt.Errorf("validate: %w", err))
	}
	if len(checked.problems) > 0 {
		return "", connectError(&invalidFiles{problems: checked.problems})
	}
	msg := fmt.Sprintf("%d file(s) valid", len(files))
	var packages []*v1.Package
	if set := checked.deps; set != nil {
		packages = packagesProto(set.Packages)
		msg += "; dependencies " + packagesText(set.Packages)
		if set.Cached {
			msg += " (installed before)"
		}
	}
	if err := report(v1.DeployStage_DEPLOY_STAGE_VALIDATE, msg, &v1.DeployResponse{Packages: packages}); err != nil {
		return "", err
	}

	hash := bundle.Hash(files)
	v := &store.Version{AppID: a.ID, Hash: hash, Entrypoint: entry, Files: store.VersionFiles(files)}
	if len(checked.compiled) > 0 {
		v.Compiled = bundle.Hash(checked.compiled)
	}
	if set := checked.deps; set != nil {
		v.Deps, v.Packages = set.Archive, set.Packages
	}
	unchanged := hash == a.DeployedVersion && entry == a.Entrypoint && v.Deps == a.DeployedDeps
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
		if v.Deps != "" {
			if err := s.keepDeps(ctx, files, v); err != nil {
				return "", err
			}
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
	if !unchanged && len(checked.compiled) > 0 {
		if err := s.cfg.Publisher.PutCompiled(ctx, hash, checked.compiled); err != nil {
			return "", s.stageFailed(v1.DeployStage_DEPLOY_STAGE_PUBLISH, "publish compiled modules", err)
		}
	}
	if err := report(v1.DeployStage_DEPLOY_STAGE_PUBLISH, "bundle published", &v1.DeployResponse{Version: hash, Unchanged: unchanged}); err != nil {
		return "", err
	}

	prev, prevEntry := a.DeployedVersion, a.Entrypoint
	if !unchanged {
		if err := s.cfg.Store.SetDeployed(ctx, a.ID, v); err != nil {
			return "", s.stageFailed(v1.DeployStage_DEPLOY_STAGE_ROUTE, "set deployed", err)
		}
		a.DeployedCompiled, a.DeployedDeps = v.Compiled, v.Deps
	}
	a.DeployedVersion, a.Entrypoint = hash, entry
	route, err := s.publishRoute(ctx, a)
	if err != nil {
		return "", s.stageFailed(v1.DeployStage_DEPLOY_STAGE_ROUTE, "publish route", err)
	}
	msg = "route points at " + short(hash)
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
	if !unchanged {
		if err := s.warmUp(ctx, a, route, prev, prevEntry, warm, report); err != nil {
			<-drafted
			return "", err
		}
	}
	if err := <-drafted; err != nil {
		return "", s.stageFailed(v1.DeployStage_DEPLOY_STAGE_LIVE, "save draft", err)
	}
	url := s.cfg.URL(a.Name)
	return hash, report(v1.DeployStage_DEPLOY_STAGE_LIVE, "live at "+url, &v1.DeployResponse{Version: hash, Url: url, Unchanged: unchanged})
}

// depsAttempts is how many times a deploy installs its dependencies
// again when a deletion frees them as its version is stored, before it
// gives up: each time takes another app's deletion at that very moment.
const depsAttempts = 3

// keepDeps makes sure the dependency archive that stored version v of
// files names is kept: the deletion of the last other app that used it
// may have freed it while v was stored (see deps.Resolver.Drop). Then the
// dependencies are installed anew and v is stored again naming them.
func (s *Service) keepDeps(ctx context.Context, files []bundle.File, v *store.Version) error {
	const stage = v1.DeployStage_DEPLOY_STAGE_STORE
	for range depsAttempts {
		kept, err := s.cfg.Deps.Kept(ctx, v.Deps)
		if err != nil {
			return s.stageFailed(stage, "check dependencies", err)
		}
		if kept {
			return nil
		}
		s.cfg.Logger.Info("a deletion freed the dependencies of the version being deployed: installing them again", "app", v.AppID, "archive", v.Deps)
		set, problems, err := s.cfg.Deps.Resolve(ctx, files)
		switch {
		case err != nil:
			return s.stageFailed(stage, "install dependencies again", err)
		case len(problems) > 0: // the allowlist changed meanwhile, say
			return connectError(&invalidFiles{problems: problems})
		case set == nil:
			return s.stageFailed(stage, "install dependencies again", errors.New("requirements.txt declares none any more"))
		}
		v.Deps, v.Packages = set.Archive, set.Packages
		if err := s.cfg.Store.PutVersion(ctx, v); err != nil {
			return s.stageFailed(stage, "store version", err)
		}
	}
	return connect.NewError(connect.CodeAborted, fmt.Errorf("deploy failed at the store stage: the installed dependencies this version names were "+
		"freed while it was stored, %d times in a row, as other apps that used them were deleted at the same moments. The app is as it was before this deploy: "+
		"deploy again.", depsAttempts))
}

// Check returns the problems a deploy of files with entrypoint entry
// would find, their dependencies' included (which it installs if no app
// has before).
func (s *Service) Check(ctx context.Context, files []bundle.File, entry string) ([]validate.Problem, error) {
	c, err := s.checkFiles(ctx, files, entry, false)
	return c.problems, err
}

// warmUp is the warm stage of a deploy of app a, whose route now points
// at the new version: a runner is started for it (see Warmer), if warm. When the
// app does not start, the deploy fails with the app's error, and the
// version deployed before, prev (if any), serves again.
func (s *Service) warmUp(ctx context.Context, a *store.App, route *v1.Route, prev, prevEntry string, warm bool, report func(v1.DeployStage, string, *v1.DeployResponse) error) error {
	const stage = v1.DeployStage_DEPLOY_STAGE_WARM
	w := s.warmer.Load()
	switch {
	case !warm:
		return report(stage, "not warmed, as asked: a runner starts on the app's first request", nil)
	case w == nil:
		return report(stage, "not warmed: here a runner starts on the app's first request", nil)
	}
	start := time.Now()
	err := (*w).Warm(ctx, route)
	var fault interface{ AppFault() bool }
	switch {
	case err == nil:
		return report(stage, fmt.Sprintf("a runner serves version %s (started in %s)", short(route.GetVersion()), time.Since(start).Round(100*time.Microsecond)), nil)
	case ctx.Err() != nil:
		return ctx.Err()
	case !errors.As(err, &fault) || !fault.AppFault():
		return report(stage, "not warmed: "+err.Error()+" The first request starts a runner.", nil)
	}
	msg := "deploy failed at the warm stage: " + err.Error()
	if prev != "" && (prev != route.GetVersion() || prevEntry != a.Entrypoint) {
		before := short(prev)
		if prev == route.GetVersion() {
			// Only the entrypoint changed: the same files with the one before.
			before += " with entrypoint " + prevEntry
		}
		if rerr := s.restore(ctx, a, prev, prevEntry, route.GetVersion()); rerr != nil {
			s.cfg.Logger.Error("restore the version deployed before", "app", a.Name, "version", prev, "err", rerr)
			msg += " The new version stays deployed: restoring version " + before + " failed (an internal error, in the server's log); roll back to it."
		} else {
			msg += " Version " + before + ", deployed before, serves again meanwhile."
		}
	} else {
		msg += " The app is deployed but does not start until it is fixed."
	}
	return connect.NewError(connect.CodeFailedPrecondition, errors.New(msg))
}

// restore points app a's route back at its version hash prev, deployed
// with entrypoint prevEntry, after version failed (which may be the same
// files with another entrypoint) did not start.
func (s *Service) restore(ctx context.Context, a *store.App, prev, prevEntry, failed string) error {
	v, err := s.cfg.Store.Version(ctx, a.ID, prev)
	if err != nil {
		return err
	}
	failedEntry := a.Entrypoint
	v.Entrypoint = prevEntry
	if err := s.pointAt(ctx, a, v); err != nil {
		return err
	}
	if failed == prev {
		s.lifecycle(ctx, a.ID, v1.EventKind_EVENT_KIND_ROLLED_BACK, v.Hash, "version %s with entrypoint %s did not start: rolled back to entrypoint %s",
			short(failed), failedEntry, prevEntry)
		return nil
	}
	s.lifecycle(ctx, a.ID, v1.EventKind_EVENT_KIND_ROLLED_BACK, v.Hash, "version %s did not start: rolled back to %s", short(failed), short(v.Hash))
	return nil
}

// checked is what checking an app's files found.
type checked struct {
	problems []validate.Problem
	compiled []bundle.File // when asked for and there are no problems
	deps     *deps.Set     // the installed dependencies, if any
}

// checkFiles checks files with entrypoint entry: their dependencies
// (requirements.txt) first, whose modules the code may then import, and
// the code. With compile it also compiles the Python modules (see
// validate.CheckCompiled).
func (s *Service) checkFiles(ctx context.Context, files []bundle.File, entry string, compile bool) (checked, error) {
	var c checked
	allowed, err := s.cfg.Imports.AllowedImports(ctx)
	if err != nil {
		return c, err
	}
	if s.cfg.Deps != nil {
		if c.deps, c.problems, err = s.cfg.Deps.Resolve(ctx, files); err != nil || len(c.problems) > 0 {
			return c, err
		}
	}
	var provided []string
	if c.deps != nil {
		provided = c.deps.Modules
	}
	if compile {
		c.problems, c.compiled, err = s.cfg.Validator.CheckCompiled(ctx, files, entry, allowed, provided...)
	} else {
		c.problems, err = s.cfg.Validator.Check(ctx, files, entry, allowed, provided...)
	}
	return c, err
}

func packagesProto(ps []store.Package) []*v1.Package {
	out := make([]*v1.Package, len(ps))
	for i, p := range ps {
		out[i] = &v1.Package{Name: p.Name, Version: p.Version}
	}
	return out
}

// packagesText lists packages as "six 1.16.0, attrs 23.2.0".
func packagesText(ps []store.Package) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.Name + " " + p.Version
	}
	if len(parts) == 0 {
		return "none beyond the platform's"
	}
	return strings.Join(parts, ", ")
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
