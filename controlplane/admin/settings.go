package admin

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/controlplane/deps"
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

// inForce reads one allowlist in force: the admin's list, else the
// defaults. It reads the settings at every call, so a change applies to
// the next validation, in every replica, without a restart.
type inForce struct {
	store    SettingsStore
	defaults []string
	pick     func(*store.Settings) []string // the admin's list; nil: none
	what     string                         // for errors: "imports", "packages"
}

func (l inForce) list(ctx context.Context) ([]string, error) {
	st, err := l.store.Settings(ctx)
	if err != nil {
		return nil, fmt.Errorf("read allowed %s: %w", l.what, err)
	}
	if list := l.pick(st); list != nil {
		return list, nil
	}
	return l.defaults, nil
}

// Imports is the import allowlist in force (see inForce).
type Imports struct{ l inForce }

// NewImports returns the import allowlist source over st with the given
// defaults.
func NewImports(st SettingsStore, defaults []string) *Imports {
	return &Imports{inForce{st, defaults, func(s *store.Settings) []string { return s.AllowedImports }, "imports"}}
}

// AllowedImports returns the import allowlist in force.
func (i *Imports) AllowedImports(ctx context.Context) ([]string, error) { return i.l.list(ctx) }

// Packages is the dependency allowlist in force (see inForce).
type Packages struct{ l inForce }

// NewPackages returns the dependency allowlist source over st with the
// given defaults.
func NewPackages(st SettingsStore, defaults []string) *Packages {
	return &Packages{inForce{st, defaults, func(s *store.Settings) []string { return s.AllowedPackages }, "packages"}}
}

// AllowedPackages returns the dependency allowlist in force.
func (p *Packages) AllowedPackages(ctx context.Context) ([]string, error) { return p.l.list(ctx) }

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
	packages, packagesChanged, err := s.newPackages(st, m)
	if err != nil {
		return nil, s.fail("update settings", err)
	}
	if m.PublicSignups == nil && !changed && !packagesChanged {
		return nil, s.fail("update settings", invalid("nothing to change: set public_signups, or change the allowed imports or packages"))
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
		notes = append(notes, importsEdit(m).describe("allowed imports"))
	}
	if packagesChanged {
		if err := s.cfg.Store.SetAllowedPackages(ctx, packages); err != nil {
			return nil, s.fail("update settings", err)
		}
		st.AllowedPackages = packages
		notes = append(notes, packagesEdit(m).describe("allowed packages"))
	}
	s.record(ctx, me, store.ActivitySettings, "", strings.Join(notes, "; "))
	return connect.NewResponse(&v1.UpdateSettingsResponse{Settings: s.settingsProto(st)}), nil
}

// listEdit is a request's change to one allowlist.
type listEdit struct {
	what          string    // what an entry names: "module", "package"
	resetField    string    // the request's reset field
	replace       *[]string // nil: not replaced
	add, remove   []string
	reset         bool
	valid         func(string) bool
	invalidReason string // what a valid entry looks like
}

// newList returns the allowlist e asks for, given the current one (nil:
// the defaults) and the defaults (nil: the defaults again), and whether e
// changes it at all.
func newList(cur, defaults []string, e listEdit) ([]string, bool, error) {
	edits := e.replace != nil || len(e.add) > 0 || len(e.remove) > 0
	if e.reset {
		if edits {
			return nil, false, invalid("%s goes back to the defaults: do not combine it with other changes of that list", e.resetField)
		}
		return nil, true, nil
	}
	if !edits {
		return nil, false, nil
	}
	list := cur
	if list == nil {
		list = defaults
	}
	if e.replace != nil {
		list = *e.replace
	}
	list = slices.Clone(list)
	for _, x := range e.add {
		if !slices.Contains(list, x) {
			list = append(list, x)
		}
	}
	list = slices.DeleteFunc(list, func(x string) bool { return slices.Contains(e.remove, x) })
	seen := map[string]bool{}
	out := []string{}
	for _, x := range list {
		x = strings.TrimSpace(x)
		if x != AllowAll && !e.valid(x) {
			return nil, false, invalid("%q is not a %s name: use names such as %s, or %s to allow every %s", x, e.what, e.invalidReason, AllowAll, e.what)
		}
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out, true, nil
}

// importsEdit is request m's change to the import allowlist.
func importsEdit(m *v1.UpdateSettingsRequest) listEdit {
	e := listEdit{what: "module", resetField: "reset_allowed_imports", add: m.GetAddImports(), remove: m.GetRemoveImports(), reset: m.GetResetAllowedImports(),
		valid: moduleRE.MatchString, invalidReason: "numpy or os.path"}
	if m.AllowedImports != nil {
		mods := m.GetAllowedImports().GetModules()
		e.replace = &mods
	}
	return e
}

// newImports returns the import allowlist the request asks for (nil: the
// defaults) and whether the request changes it at all.
func (s *Service) newImports(st *store.Settings, m *v1.UpdateSettingsRequest) ([]string, bool, error) {
	out, changed, err := newList(st.AllowedImports, s.cfg.DefaultImports, importsEdit(m))
	if err == nil && changed && out != nil && len(out) == 0 {
		return nil, false, invalid("the allowlist would be empty and apps could not even import fastapi: reset it to the defaults instead")
	}
	return out, changed, err
}

// packagesEdit is request m's change to the dependency allowlist.
func packagesEdit(m *v1.UpdateSettingsRequest) listEdit {
	e := listEdit{what: "package", resetField: "reset_allowed_packages", add: m.GetAddPackages(), remove: m.GetRemovePackages(), reset: m.GetResetAllowedPackages(),
		valid: deps.ValidName, invalidReason: "python-dateutil or six"}
	if m.AllowedPackages != nil {
		pkgs := m.GetAllowedPackages().GetPackages()
		e.replace = &pkgs
	}
	return e
}

// newPackages returns the dependency allowlist the request asks for (nil:
// the defaults) and whether the request changes it at all. An empty list
// is allowed: no app may then declare any.
func (s *Service) newPackages(st *store.Settings, m *v1.UpdateSettingsRequest) ([]string, bool, error) {
	return newList(st.AllowedPackages, s.cfg.DefaultPackages, packagesEdit(m))
}

// describe is the activity note of edit e of the allowlist named label,
// such as "allowed imports +numpy -os".
func (e listEdit) describe(label string) string {
	if e.reset {
		return label + " reset to the defaults"
	}
	var parts []string
	if e.replace != nil {
		parts = append(parts, "set to "+strings.Join(*e.replace, " "))
	}
	for _, a := range e.add {
		parts = append(parts, "+"+a)
	}
	for _, r := range e.remove {
		parts = append(parts, "-"+r)
	}
	return label + " " + strings.Join(parts, " ")
}

func (s *Service) settingsProto(st *store.Settings) *v1.Settings {
	p := &v1.Settings{
		PublicSignups:             st.PublicSignups,
		AllowedImports:            st.AllowedImports,
		DefaultAllowedImports:     s.cfg.DefaultImports,
		AllowedImportsCustomized:  st.AllowedImports != nil,
		AllowedPackages:           st.AllowedPackages,
		DefaultAllowedPackages:    s.cfg.DefaultPackages,
		AllowedPackagesCustomized: st.AllowedPackages != nil,
		PackageIndex:              s.cfg.PackageIndex,
	}
	if st.AllowedImports == nil {
		p.AllowedImports = s.cfg.DefaultImports
	}
	if st.AllowedPackages == nil {
		p.AllowedPackages = s.cfg.DefaultPackages
	}
	return p
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
