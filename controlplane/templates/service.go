package templates

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gofastapi/gofastapi/controlplane/apps"
	"github.com/gofastapi/gofastapi/controlplane/auth"
	"github.com/gofastapi/gofastapi/controlplane/store"
	"github.com/gofastapi/gofastapi/controlplane/validate"
	"github.com/gofastapi/gofastapi/proto/bundle"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
	global "github.com/gofastapi/gofastapi/templates"
)

// maxPerUser caps each user's own templates.
const maxPerUser = 50

// Store keeps users' templates.
type Store interface {
	CreateTemplate(ctx context.Context, t *store.Template) error
	Template(ctx context.Context, id string) (*store.Template, error)
	ListTemplates(ctx context.Context, ownerID string) ([]*store.Template, error)
	ReplaceTemplate(ctx context.Context, t *store.Template) error
	DeleteTemplate(ctx context.Context, ownerID, id string) error
	DeleteTemplates(ctx context.Context, ownerID string) (int64, error)
	CountTemplates(ctx context.Context) (int64, error)
}

// Validator checks template code.
type Validator interface {
	Check(ctx context.Context, files []bundle.File, entrypoint string, allowed []string, provided ...string) ([]validate.Problem, error)
}

// AppFiles gives the files of a user's app, to save as a template.
type AppFiles interface {
	AppFiles(ctx context.Context, ownerID, idOrName string) (*apps.Template, error)
}

// Config configures a Service.
type Config struct {
	Store     Store
	Validator Validator
	// Imports is the allowlist the global templates are validated with.
	Imports []string
	// Global, when set, replaces the templates embedded in the binary.
	Global []global.Template
}

// Service implements TemplateService and apps.Templates.
type Service struct {
	cfg    Config
	global []global.Template
	apps   AppFiles
}

var _ gofastapiv1connect.TemplateServiceHandler = (*Service)(nil)

// NewService loads the global templates and validates their code: a
// template that would not deploy is a platform bug, reported at start.
// Problems of the runtime rather than the code (a FastHTML template where
// the runtime has no python-fasthtml) are allowed: such an app is refused
// at deploy with the reason.
func NewService(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Validator == nil {
		return nil, errors.New("templates: Config.Store and Config.Validator are required")
	}
	g := cfg.Global
	if g == nil {
		var err error
		if g, err = global.Load(); err != nil {
			return nil, err
		}
	}
	for _, t := range g {
		probs, err := cfg.Validator.Check(context.Background(), globalFiles(t), t.Entrypoint, cfg.Imports)
		if err != nil {
			return nil, fmt.Errorf("validate template %s: %w", t.ID, err)
		}
		for _, p := range probs {
			if !p.Runtime {
				return nil, fmt.Errorf("template %s: %s:%d:%d: %s", t.ID, p.File, p.Line, p.Column, p.Message)
			}
		}
	}
	return &Service{cfg: cfg, global: g}, nil
}

// SetApps connects the app service, which the templates service needs to
// save an app as a template (and which itself needs this service).
func (s *Service) SetApps(a AppFiles) { s.apps = a }

func invalid(format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
}

var errNotFound = connect.NewError(connect.CodeNotFound, errors.New("no such template: list them with `gofastapi templates`, the editor's template browser, or ListTemplates"))

// connectError maps store errors; it is the service's one mapping.
func connectError(err error) error {
	var ce *connect.Error
	switch {
	case errors.As(err, &ce):
		return err
	case errors.Is(err, store.ErrNotFound):
		return errNotFound
	}
	return connect.NewError(connect.CodeInternal, errors.New("internal error"))
}

// ListTemplates implements TemplateService.ListTemplates.
func (s *Service) ListTemplates(ctx context.Context, req *connect.Request[v1.ListTemplatesRequest]) (*connect.Response[v1.ListTemplatesResponse], error) {
	u, err := auth.User(ctx)
	if err != nil {
		return nil, err
	}
	scope := req.Msg.GetScope()
	out := &v1.ListTemplatesResponse{}
	if scope != v1.TemplateScope_TEMPLATE_SCOPE_MINE {
		for _, t := range s.global {
			p := globalProto(t)
			p.Files = nil
			out.Templates = append(out.Templates, p)
		}
	}
	if scope != v1.TemplateScope_TEMPLATE_SCOPE_GLOBAL {
		mine, err := s.cfg.Store.ListTemplates(ctx, u.ID)
		if err != nil {
			return nil, connectError(err)
		}
		for _, t := range mine {
			out.Templates = append(out.Templates, userProto(t))
		}
	}
	return connect.NewResponse(out), nil
}

// GetTemplate implements TemplateService.GetTemplate.
func (s *Service) GetTemplate(ctx context.Context, req *connect.Request[v1.GetTemplateRequest]) (*connect.Response[v1.GetTemplateResponse], error) {
	u, err := auth.User(ctx)
	if err != nil {
		return nil, err
	}
	if t := s.globalByID(req.Msg.GetId()); t != nil {
		return connect.NewResponse(&v1.GetTemplateResponse{Template: globalProto(*t)}), nil
	}
	t, err := s.own(ctx, u.ID, req.Msg.GetId())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.GetTemplateResponse{Template: userProto(t)}), nil
}

// CreateTemplate implements TemplateService.CreateTemplate.
func (s *Service) CreateTemplate(ctx context.Context, req *connect.Request[v1.CreateTemplateRequest]) (*connect.Response[v1.CreateTemplateResponse], error) {
	u, err := auth.User(ctx)
	if err != nil {
		return nil, err
	}
	m := req.Msg
	if err := checkText(m.GetName(), m.GetDescription()); err != nil {
		return nil, err
	}
	t := &store.Template{OwnerID: u.ID, Owner: u.Username, Name: strings.TrimSpace(m.GetName()), Description: m.GetDescription(),
		Framework: m.GetFramework().String(), Mode: v1.AppMode_APP_MODE_SINGLE.String(), Entrypoint: m.GetEntrypoint()}
	switch {
	case m.GetFromApp() != "":
		if s.apps == nil {
			return nil, connect.NewError(connect.CodeUnimplemented, errors.New("saving apps as templates is not available"))
		}
		src, err := s.apps.AppFiles(ctx, u.ID, m.GetFromApp())
		if errors.Is(err, store.ErrNotFound) {
			return nil, connect.NewError(connect.CodeNotFound, errors.New("you have no app "+m.GetFromApp()))
		} else if err != nil {
			return nil, connectError(err)
		}
		t.Framework, t.Mode, t.Entrypoint = src.Framework, src.Mode, src.Entrypoint
		t.Files = store.VersionFiles(src.Files)
	case len(m.GetFiles()) > 0:
		files := bundle.FromProto(m.GetFiles())
		t.Files = store.VersionFiles(files)
		if len(files) > 1 {
			t.Mode = v1.AppMode_APP_MODE_MULTI.String()
		}
	default:
		return nil, invalid("a template needs files: name an app (from_app) or send files")
	}
	if t.Framework == v1.Framework_FRAMEWORK_UNSPECIFIED.String() {
		t.Framework = v1.Framework_FRAMEWORK_FASTAPI.String()
	}
	if t.Entrypoint == "" {
		t.Entrypoint = "app.py"
	}
	if err := checkFiles(t.Files); err != nil {
		return nil, err
	}
	mine, err := s.cfg.Store.ListTemplates(ctx, u.ID)
	if err != nil {
		return nil, connectError(err)
	}
	if len(mine) >= maxPerUser {
		return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("you have %d templates, the most allowed: delete one first", len(mine)))
	}
	if err := s.cfg.Store.CreateTemplate(ctx, t); err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(&v1.CreateTemplateResponse{Template: userProto(t)}), nil
}

// UpdateTemplate implements TemplateService.UpdateTemplate.
func (s *Service) UpdateTemplate(ctx context.Context, req *connect.Request[v1.UpdateTemplateRequest]) (*connect.Response[v1.UpdateTemplateResponse], error) {
	u, err := auth.User(ctx)
	if err != nil {
		return nil, err
	}
	if s.globalByID(req.Msg.GetId()) != nil {
		return nil, connect.NewError(connect.CodePermissionDenied, errors.New("global templates ship with the platform and cannot be changed: save a copy as your own"))
	}
	t, err := s.own(ctx, u.ID, req.Msg.GetId())
	if err != nil {
		return nil, err
	}
	m := req.Msg
	if m.Name != nil {
		t.Name = strings.TrimSpace(m.GetName())
	}
	if m.Description != nil {
		t.Description = m.GetDescription()
	}
	if err := checkText(t.Name, t.Description); err != nil {
		return nil, err
	}
	if len(m.GetFiles()) > 0 {
		files := bundle.FromProto(m.GetFiles())
		t.Files = store.VersionFiles(files)
		if err := checkFiles(t.Files); err != nil {
			return nil, err
		}
	}
	if err := s.cfg.Store.ReplaceTemplate(ctx, t); err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(&v1.UpdateTemplateResponse{Template: userProto(t)}), nil
}

// DeleteTemplate implements TemplateService.DeleteTemplate.
func (s *Service) DeleteTemplate(ctx context.Context, req *connect.Request[v1.DeleteTemplateRequest]) (*connect.Response[v1.DeleteTemplateResponse], error) {
	u, err := auth.User(ctx)
	if err != nil {
		return nil, err
	}
	if s.globalByID(req.Msg.GetId()) != nil {
		return nil, connect.NewError(connect.CodePermissionDenied, errors.New("global templates ship with the platform and cannot be deleted"))
	}
	if err := s.cfg.Store.DeleteTemplate(ctx, u.ID, req.Msg.GetId()); err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(&v1.DeleteTemplateResponse{}), nil
}

// Lookup implements apps.Templates: a global template, or one of userID's.
func (s *Service) Lookup(ctx context.Context, userID, id string) (*apps.Template, error) {
	if g := s.globalByID(id); g != nil {
		return &apps.Template{ID: g.ID, Framework: frameworkOf(g.Framework).String(), Mode: modeOf(g.Mode).String(),
			Entrypoint: g.Entrypoint, Files: globalFiles(*g)}, nil
	}
	t, err := s.own(ctx, userID, id)
	if err != nil {
		return nil, err
	}
	return &apps.Template{ID: t.ID, Framework: t.Framework, Mode: t.Mode, Entrypoint: t.Entrypoint, Files: store.BundleFiles(t.Files)}, nil
}

// CountTemplates counts the global templates and every user's; it
// implements admin.TemplateCounter.
func (s *Service) CountTemplates(ctx context.Context) (int64, error) {
	n, err := s.cfg.Store.CountTemplates(ctx)
	return n + int64(len(s.global)), err
}

// DeleteUserData deletes userID's templates; it implements admin.UserData.
func (s *Service) DeleteUserData(ctx context.Context, userID string) (map[string]int64, error) {
	n, err := s.cfg.Store.DeleteTemplates(ctx, userID)
	return map[string]int64{"templates": n}, err
}

// own returns userID's template id; another user's is not found.
func (s *Service) own(ctx context.Context, userID, id string) (*store.Template, error) {
	t, err := s.cfg.Store.Template(ctx, id)
	if err != nil {
		return nil, connectError(err)
	}
	if t.OwnerID != userID {
		return nil, errNotFound
	}
	return t, nil
}

func (s *Service) globalByID(id string) *global.Template {
	for i := range s.global {
		if s.global[i].ID == id {
			return &s.global[i]
		}
	}
	return nil
}

func checkText(name, description string) error {
	if n := len(strings.TrimSpace(name)); n == 0 || n > 100 {
		return invalid("template name must be 1-100 characters")
	}
	if len(description) > 2000 {
		return invalid("template description is %d characters: at most 2000", len(description))
	}
	return nil
}

func checkFiles(fs []store.VersionFile) error {
	if probs := validate.CheckNames(store.BundleFiles(fs)); len(probs) > 0 {
		p := probs[0]
		if p.File != "" {
			return invalid("%s: %s", p.File, p.Message)
		}
		return invalid("%s", p.Message)
	}
	return nil
}

func globalFiles(t global.Template) []bundle.File {
	out := make([]bundle.File, len(t.Files))
	for i, f := range t.Files {
		out[i] = bundle.File{Name: f.Name, Content: []byte(f.Content)}
	}
	return out
}

func frameworkOf(s string) v1.Framework {
	if s == "fasthtml" {
		return v1.Framework_FRAMEWORK_FASTHTML
	}
	return v1.Framework_FRAMEWORK_FASTAPI
}

func modeOf(s string) v1.AppMode {
	if s == "multi" {
		return v1.AppMode_APP_MODE_MULTI
	}
	return v1.AppMode_APP_MODE_SINGLE
}

func globalProto(t global.Template) *v1.Template {
	p := &v1.Template{Id: t.ID, Name: t.Name, Description: t.Description, Framework: frameworkOf(t.Framework),
		Mode: modeOf(t.Mode), Entrypoint: t.Entrypoint, Global: true, Tags: t.Tags}
	for _, f := range t.Files {
		p.Files = append(p.Files, &v1.File{Name: f.Name, Content: []byte(f.Content)})
	}
	return p
}

func userProto(t *store.Template) *v1.Template {
	p := &v1.Template{Id: t.ID, Name: t.Name, Description: t.Description, Framework: v1.Framework(v1.Framework_value[t.Framework]),
		Mode: v1.AppMode(v1.AppMode_value[t.Mode]), Entrypoint: t.Entrypoint, Owner: t.Owner,
		CreatedAt: timestamppb.New(t.CreatedAt), UpdatedAt: timestamppb.New(t.UpdatedAt)}
	for _, f := range t.Files {
		p.Files = append(p.Files, &v1.File{Name: f.Name, Content: f.Content})
	}
	return p
}
