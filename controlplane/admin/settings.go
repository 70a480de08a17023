package admin

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/controlplane/store"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// AllowAll is the allowlist entry that allows every import.
const AllowAll = "*"

var moduleRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// SettingsStore is where Imports reads the settings.
type SettingsStore interface {
	Settings(ctx context.Context) (*store.Settings, error)
}

// Imports is the import allowlist in force: the admin's list, else the
// defaults. It reads the settings at every call, so a change applies to
// the next validation, in every replica, without a restart.
type Imports struct {
	store    SettingsStore
	defaults []string
}

// NewImports returns the allowlist source over st with the given
// defaults.
func NewImports(st SettingsStore, defaults []string) *Imports {
	return &Imports{store: st, defaults: defaults}
}

// AllowedImports returns the allowlist in force.
func (i *Imports) AllowedImports(ctx context.Context) ([]string, error) {
	st, err := i.store.Settings(ctx)
	if err != nil {
		return nil, fmt.Errorf("read allowed imports: %w", err)
	}
	if st.AllowedImports == nil {
		return i.defaults, nil
	}
	return st.AllowedImports, nil
}

// GetSettings implements AdminService.GetSettings.
func (s *Service) GetSettings(ctx context.Context, req *connect.Request[v1.GetSettingsRequest]) (*connect.Response[v1.GetSettingsResponse], error) {
	if _, err := s.admin(ctx); err != nil {
		return nil, err
	}
	st, err := s.cfg.Store.Settings(ctx)
	if err != nil {
		return nil, s.fail("get settings", err)
	}
	return connect.NewResponse(&v1.GetSettingsResponse{Settings: s.settingsProto(st)}), nil
}

// UpdateSettings implements AdminService.UpdateSettings.
func (s *Service) UpdateSettings(ctx context.Context, req *connect.Request[v1.UpdateSettingsRequest]) (*connect.Response[v1.UpdateSettingsResponse], error) {
	me, err := s.admin(ctx)
	if err != nil {
		return nil, err
	}
	m := req.Msg
	st, err := s.cfg.Store.Settings(ctx)
	if err != nil {
		return nil, s.fail("update settings", err)
	}
	imports, changed, err := s.newImports(st, m)
	if err != nil {
		return nil, s.fail("update settings", err)
	}
	if m.PublicSignups == nil && !changed {
		return nil, s.fail("update settings", invalid("nothing to change: set public_signups or change the allowed imports"))
	}
	var notes []string
	if m.PublicSignups != nil {
		if err := s.cfg.Store.SetPublicSignups(ctx, m.GetPublicSignups()); err != nil {
			return nil, s.fail("update settings", err)
		}
		st.PublicSignups = m.GetPublicSignups()
		notes = append(notes, "public signups "+onOff(st.PublicSignups))
	}
	if changed {
		if err := s.cfg.Store.SetAllowedImports(ctx, imports); err != nil {
			return nil, s.fail("update settings", err)
		}
		st.AllowedImports = imports
		notes = append(notes, describeImports(m))
	}
	s.record(ctx, me, store.ActivitySettings, "", strings.Join(notes, "; "))
	return connect.NewResponse(&v1.UpdateSettingsResponse{Settings: s.settingsProto(st)}), nil
}

// newImports returns the allowlist the request asks for (nil: the
// defaults) and whether the request changes the allowlist at all.
func (s *Service) newImports(st *store.Settings, m *v1.UpdateSettingsRequest) ([]string, bool, error) {
	edits := m.AllowedImports != nil || len(m.GetAddImports()) > 0 || len(m.GetRemoveImports()) > 0
	if m.GetResetAllowedImports() {
		if edits {
			return nil, false, invalid("reset_allowed_imports goes back to the defaults: do not combine it with other import changes")
		}
		return nil, true, nil
	}
	if !edits {
		return nil, false, nil
	}
	list := st.AllowedImports
	if list == nil {
		list = s.cfg.DefaultImports
	}
	if m.AllowedImports != nil {
		list = m.GetAllowedImports().GetModules()
	}
	list = slices.Clone(list)
	for _, mod := range m.GetAddImports() {
		if !slices.Contains(list, mod) {
			list = append(list, mod)
		}
	}
	list = slices.DeleteFunc(list, func(mod string) bool { return slices.Contains(m.GetRemoveImports(), mod) })
	seen := map[string]bool{}
	out := []string{}
	for _, mod := range list {
		mod = strings.TrimSpace(mod)
		if mod != AllowAll && !moduleRE.MatchString(mod) {
			return nil, false, invalid("%q is not a module name: use names such as numpy or os.path, or %s to allow every import", mod, AllowAll)
		}
		if !seen[mod] {
			seen[mod] = true
			out = append(out, mod)
		}
	}
	if len(out) == 0 {
		return nil, false, invalid("the allowlist would be empty and apps could not even import fastapi: reset it to the defaults instead")
	}
	return out, true, nil
}

func describeImports(m *v1.UpdateSettingsRequest) string {
	if m.GetResetAllowedImports() {
		return "allowed imports reset to the defaults"
	}
	var parts []string
	if m.AllowedImports != nil {
		parts = append(parts, "set to "+strings.Join(m.GetAllowedImports().GetModules(), " "))
	}
	for _, a := range m.GetAddImports() {
		parts = append(parts, "+"+a)
	}
	for _, r := range m.GetRemoveImports() {
		parts = append(parts, "-"+r)
	}
	return "allowed imports " + strings.Join(parts, " ")
}

func (s *Service) settingsProto(st *store.Settings) *v1.Settings {
	p := &v1.Settings{
		PublicSignups:            st.PublicSignups,
		AllowedImports:           st.AllowedImports,
		DefaultAllowedImports:    s.cfg.DefaultImports,
		AllowedImportsCustomized: st.AllowedImports != nil,
	}
	if st.AllowedImports == nil {
		p.AllowedImports = s.cfg.DefaultImports
	}
	return p
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
