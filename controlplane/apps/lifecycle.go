package apps

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gofastapi/gofastapi/controlplane/auth"
	"github.com/gofastapi/gofastapi/controlplane/logstore"
	"github.com/gofastapi/gofastapi/controlplane/store"
	"github.com/gofastapi/gofastapi/controlplane/validate"
	"github.com/gofastapi/gofastapi/proto/bundle"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

const (
	maxDescription = 2000
	maxNotes       = 20000
	modeSingle     = "APP_MODE_SINGLE"
	modeMulti      = "APP_MODE_MULTI"
)

// CreateApp implements AppService.CreateApp. The app starts with a draft:
// the files sent, else the template's, else its framework's starter files
// (one file or the multi-file preset).
func (s *Service) CreateApp(ctx context.Context, req *connect.Request[v1.CreateAppRequest]) (*connect.Response[v1.CreateAppResponse], error) {
	u, err := auth.User(ctx)
	if err != nil {
		return nil, err
	}
	m := req.Msg
	if msg := checkName(m.GetName()); msg != "" {
		return nil, invalid("%s", msg)
	}
	if err := checkText(m.GetDescription(), m.GetNotes()); err != nil {
		return nil, err
	}
	fw, mode := m.GetFramework(), m.GetMode()
	entry := m.GetEntrypoint()
	files := bundle.FromProto(m.GetFiles())
	tmplID := m.GetTemplateId()
	if tmplID == "" && len(files) == 0 && s.cfg.Templates != nil {
		tmplID = presetFor(fw, mode)
	}
	if tmplID != "" {
		if s.cfg.Templates == nil {
			return nil, connect.NewError(connect.CodeUnimplemented, errors.New("this platform has no templates"))
		}
		t, err := s.cfg.Templates.Lookup(ctx, u.ID, tmplID)
		if err != nil {
			return nil, s.fail("get template", err)
		}
		if len(files) == 0 {
			files = t.Files
		}
		if fw == v1.Framework_FRAMEWORK_UNSPECIFIED {
			fw = v1.Framework(v1.Framework_value[t.Framework])
		}
		if mode == v1.AppMode_APP_MODE_UNSPECIFIED {
			mode = v1.AppMode(v1.AppMode_value[t.Mode])
		}
		if entry == "" {
			entry = t.Entrypoint
		}
	}
	if fw == v1.Framework_FRAMEWORK_UNSPECIFIED {
		fw = v1.Framework_FRAMEWORK_FASTAPI
	}
	if mode == v1.AppMode_APP_MODE_UNSPECIFIED {
		mode = v1.AppMode_APP_MODE_SINGLE
		if len(files) > 1 {
			mode = v1.AppMode_APP_MODE_MULTI
		}
	}
	if entry == "" {
		entry = "app.py"
	}
	if len(files) > 0 {
		if err := checkFiles(files); err != nil {
			return nil, err
		}
	}
	a := &store.App{OwnerID: u.ID, Name: m.GetName(), Description: m.GetDescription(), Notes: m.GetNotes(),
		Framework: fw.String(), Mode: mode.String(), Entrypoint: entry, TemplateID: m.GetTemplateId()}
	if err := s.cfg.Store.CreateApp(ctx, a); err != nil {
		return nil, s.fail("create app", err)
	}
	if err := s.checkAppLimit(ctx, u, a); err != nil {
		return nil, s.fail("create app", err)
	}
	out := &v1.CreateAppResponse{}
	if len(files) > 0 {
		d := &store.Draft{AppID: a.ID, Entrypoint: entry, Hash: bundle.Hash(files), Files: store.VersionFiles(files)}
		if err := s.cfg.Store.PutDraft(ctx, d); err != nil {
			return nil, s.fail("save draft", err)
		}
		out.Draft = draftProto(d)
		out.App = s.appProto(a, d)
	} else {
		out.App = s.appProto(a, nil)
	}
	s.record(ctx, u, store.ActivityAppCreate, a.Name, "")
	return connect.NewResponse(out), nil
}

// presetFor names the global template a new app of fw and mode starts
// from when the caller gave neither files nor a template.
func presetFor(fw v1.Framework, mode v1.AppMode) string {
	switch {
	case fw == v1.Framework_FRAMEWORK_FASTHTML && mode == v1.AppMode_APP_MODE_MULTI:
		return "fasthtml-multi"
	case fw == v1.Framework_FRAMEWORK_FASTHTML:
		return "fasthtml"
	case mode == v1.AppMode_APP_MODE_MULTI:
		return "fastapi-multi"
	}
	return "hello"
}

// GetApp implements AppService.GetApp: the app, its draft and its deployed
// files.
func (s *Service) GetApp(ctx context.Context, req *connect.Request[v1.GetAppRequest]) (*connect.Response[v1.GetAppResponse], error) {
	a, err := s.owned(ctx, req.Msg.GetIdOrName())
	if err != nil {
		return nil, err
	}
	d, err := s.draft(ctx, a.ID)
	if err != nil {
		return nil, s.fail("get draft", err)
	}
	out := &v1.GetAppResponse{App: s.appProto(a, d), Draft: draftProto(d)}
	if err := s.setDomains(ctx, out.App); err != nil {
		return nil, err
	}
	if a.DeployedVersion != "" {
		v, err := s.cfg.Store.Version(ctx, a.ID, a.DeployedVersion)
		if err != nil {
			return nil, s.fail("get version", err)
		}
		out.Deployed = &v1.Draft{Files: versionFiles(v), Entrypoint: v.Entrypoint, Hash: v.Hash, SavedAt: timestamppb.New(v.CreatedAt)}
	}
	return connect.NewResponse(out), nil
}

// ListApps implements AppService.ListApps.
func (s *Service) ListApps(ctx context.Context, req *connect.Request[v1.ListAppsRequest]) (*connect.Response[v1.ListAppsResponse], error) {
	u, err := auth.User(ctx)
	if err != nil {
		return nil, err
	}
	apps, err := s.cfg.Store.ListApps(ctx, u.ID)
	if err != nil {
		return nil, s.fail("list apps", err)
	}
	ids := make([]string, len(apps))
	for i, a := range apps {
		ids[i] = a.ID
	}
	drafts, err := s.cfg.Store.DraftHashes(ctx, ids)
	if err != nil {
		return nil, s.fail("list drafts", err)
	}
	out := &v1.ListAppsResponse{}
	for _, a := range apps {
		var d *store.Draft
		if dd, ok := drafts[a.ID]; ok {
			d = &dd
		}
		out.Apps = append(out.Apps, s.appProto(a, d))
	}
	return connect.NewResponse(out), nil
}

// UpdateApp implements AppService.UpdateApp.
func (s *Service) UpdateApp(ctx context.Context, req *connect.Request[v1.UpdateAppRequest]) (*connect.Response[v1.UpdateAppResponse], error) {
	a, err := s.owned(ctx, req.Msg.GetIdOrName())
	if err != nil {
		return nil, err
	}
	m := req.Msg
	var up store.AppUpdate
	if m.Name != nil && m.GetName() != a.Name {
		if msg := checkName(m.GetName()); msg != "" {
			return nil, invalid("%s", msg)
		}
		up.Name = m.Name
	}
	if err := checkText(m.GetDescription(), m.GetNotes()); err != nil {
		return nil, err
	}
	up.Description, up.Notes = m.Description, m.Notes
	if m.Framework != nil {
		if m.GetFramework() == v1.Framework_FRAMEWORK_UNSPECIFIED {
			return nil, invalid("framework must be FRAMEWORK_FASTAPI or FRAMEWORK_FASTHTML")
		}
		fw := m.GetFramework().String()
		up.Framework = &fw
	}
	if m.Mode != nil {
		if m.GetMode() == v1.AppMode_APP_MODE_UNSPECIFIED {
			return nil, invalid("mode must be APP_MODE_SINGLE or APP_MODE_MULTI")
		}
		mode := m.GetMode().String()
		up.Mode = &mode
	}
	if m.Entrypoint != nil {
		if msgs := validate.CheckNames([]bundle.File{{Name: m.GetEntrypoint(), Content: nil}}); len(msgs) > 0 || !isPy(m.GetEntrypoint()) {
			return nil, invalid("entrypoint %q must be the name of a .py file of the app, such as app.py", m.GetEntrypoint())
		}
		up.Entrypoint = m.Entrypoint
	}
	updated, err := s.cfg.Store.UpdateApp(ctx, a.ID, up)
	if err != nil {
		return nil, s.fail("update app", err)
	}
	if updated.Name != a.Name {
		if err := s.moveDomains(ctx, updated); err != nil {
			return nil, s.fail("move custom domains", err)
		}
	}
	if updated.DeployedVersion != "" && (updated.Name != a.Name || updated.Description != a.Description) {
		// The route carries the name (its key) and the OpenGraph text.
		if _, err := s.publishRoute(ctx, updated); err != nil {
			return nil, s.fail("publish route", err)
		}
		if updated.Name != a.Name {
			if err := s.cfg.Publisher.DeleteRoute(ctx, a.Name); err != nil {
				return nil, s.fail("delete old route", err)
			}
			s.event(ctx, a.ID, "renamed from %s to %s: the app is now at %s", a.Name, updated.Name, s.cfg.URL(updated.Name))
		}
	}
	d, err := s.draft(ctx, a.ID)
	if err != nil {
		return nil, s.fail("get draft", err)
	}
	return connect.NewResponse(&v1.UpdateAppResponse{App: s.appProto(updated, d)}), nil
}

// SaveDraft implements AppService.SaveDraft. Files beyond the limits, or
// with bad names, are refused; code problems are saved with the draft and
// returned.
func (s *Service) SaveDraft(ctx context.Context, req *connect.Request[v1.SaveDraftRequest]) (*connect.Response[v1.SaveDraftResponse], error) {
	a, err := s.owned(ctx, req.Msg.GetIdOrName())
	if err != nil {
		return nil, err
	}
	files := bundle.FromProto(req.Msg.GetFiles())
	if len(files) == 0 {
		return nil, invalid("a draft needs at least one file")
	}
	if err := checkFiles(files); err != nil {
		return nil, err
	}
	entry := a.Entrypoint
	if e := req.Msg.GetEntrypoint(); e != "" {
		entry = e
	}
	checked, err := s.checkFiles(ctx, files, entry, false)
	if err != nil {
		return nil, s.fail("validate", err)
	}
	problems := checked.problems
	if entry != a.Entrypoint {
		if a, err = s.cfg.Store.UpdateApp(ctx, a.ID, store.AppUpdate{Entrypoint: &entry}); err != nil {
			return nil, s.fail("set entrypoint", err)
		}
	}
	d := &store.Draft{AppID: a.ID, Entrypoint: entry, Hash: bundle.Hash(files), Files: store.VersionFiles(files)}
	if err := s.cfg.Store.PutDraft(ctx, d); err != nil {
		return nil, s.fail("save draft", err)
	}
	out := &v1.SaveDraftResponse{App: s.appProto(a, d)}
	for _, p := range problems {
		out.Problems = append(out.Problems, &v1.ValidationError{File: p.File, Line: int32(p.Line), Column: int32(p.Column), Message: p.Message})
	}
	return connect.NewResponse(out), nil
}

// draft returns appID's draft, or nil if it has none.
func (s *Service) draft(ctx context.Context, appID string) (*store.Draft, error) {
	d, err := s.cfg.Store.Draft(ctx, appID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return d, err
}

// checkFiles refuses files beyond the limits or with bad names; the error
// names each file and what to change.
func checkFiles(files []bundle.File) error {
	if probs := validate.CheckNames(files); len(probs) > 0 {
		return connectError(&invalidFiles{problems: probs})
	}
	return nil
}

func checkText(description, notes string) error {
	if len(description) > maxDescription {
		return invalid("description is %d characters: at most %d", len(description), maxDescription)
	}
	if len(notes) > maxNotes {
		return invalid("notes are %d characters: at most %d", len(notes), maxNotes)
	}
	return nil
}

func isPy(name string) bool { return len(name) > 3 && name[len(name)-3:] == ".py" }

// status compares a's draft d with its deployed version.
func status(a *store.App, d *store.Draft) v1.AppStatus {
	switch {
	case a.DeployedVersion == "":
		return v1.AppStatus_APP_STATUS_NOT_DEPLOYED
	case d != nil && (d.Hash != a.DeployedVersion || d.Entrypoint != a.Entrypoint):
		return v1.AppStatus_APP_STATUS_CHANGES_NOT_DEPLOYED
	}
	return v1.AppStatus_APP_STATUS_UP_TO_DATE
}

func (s *Service) appProto(a *store.App, d *store.Draft) *v1.App {
	p := &v1.App{
		Id: a.ID, Name: a.Name, Description: a.Description, Notes: a.Notes, Entrypoint: a.Entrypoint,
		Framework:       v1.Framework(v1.Framework_value[a.Framework]),
		Mode:            v1.AppMode(v1.AppMode_value[a.Mode]),
		DeployedVersion: a.DeployedVersion, CreatedAt: timestamppb.New(a.CreatedAt),
		Status: status(a, d), TemplateId: a.TemplateID, Deploying: s.isDeploying(a.ID),
	}
	if p.Mode == v1.AppMode_APP_MODE_UNSPECIFIED {
		p.Mode = v1.AppMode_APP_MODE_SINGLE
	}
	if d != nil {
		p.DraftHash, p.DraftSavedAt = d.Hash, timestamppb.New(d.SavedAt)
	}
	if a.DeployedVersion != "" {
		p.Url = s.cfg.URL(a.Name)
		p.DeployedAt = timestamppb.New(a.DeployedAt)
	}
	return p
}

func draftProto(d *store.Draft) *v1.Draft {
	if d == nil {
		return nil
	}
	out := &v1.Draft{Entrypoint: d.Entrypoint, Hash: d.Hash, SavedAt: timestamppb.New(d.SavedAt)}
	for _, f := range d.Files {
		out.Files = append(out.Files, &v1.File{Name: f.Name, Content: f.Content})
	}
	return out
}

func versionFiles(v *store.Version) []*v1.File {
	out := make([]*v1.File, len(v.Files))
	for i, f := range v.Files {
		out[i] = &v1.File{Name: f.Name, Content: f.Content}
	}
	return out
}

// lifecycle records a lifecycle event of appID in its event stream and as
// a platform line in its log. Losing it must not fail the operation that
// caused it, so a failure is only logged.
func (s *Service) lifecycle(ctx context.Context, appID string, kind v1.EventKind, version, format string, args ...any) {
	now, msg := time.Now(), fmt.Sprintf(format, args...)
	if err := s.cfg.Logs.AppendEvent(ctx, appID, &v1.Event{Time: timestamppb.New(now), Kind: kind, Message: msg, Version: version}); err != nil {
		s.cfg.Logger.Warn("append event", "app", appID, "err", err)
	}
	if err := s.cfg.Logs.Append(ctx, appID, logstore.Line{Time: now, Stream: "platform", Text: msg}); err != nil {
		s.cfg.Logger.Warn("append event", "app", appID, "err", err)
	}
}
