package apps

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/gofastapi/gofastapi/controlplane/store"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// Environment limits.
const (
	maxEnvVars     = 50
	maxEnvValue    = 32 << 10
	maxEnvTotal    = 64 << 10
	envReservedMsg = "is reserved by the platform and cannot be set"
)

var envNameRE = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

// reservedEnv are names the platform sets or that would change how the
// runner's Python starts.
var reservedEnv = map[string]bool{"PLATFORM_MONGO_URI": true, "PATH": true, "PYTHONPATH": true,
	"PYTHONHOME": true, "PYTHONSTARTUP": true, "HOME": true}

// checkEnvName returns why name cannot be an app's variable, or "".
func checkEnvName(name string) string {
	switch {
	case !envNameRE.MatchString(name):
		return fmt.Sprintf("variable name %q must match ^[A-Z_][A-Z0-9_]*$ (upper-case letters, digits and _, not starting with a digit)", name)
	case reservedEnv[name] || strings.HasPrefix(name, "GOFASTAPI_") || strings.HasPrefix(name, "LD_"):
		return fmt.Sprintf("variable %s %s (reserved: PLATFORM_MONGO_URI, GOFASTAPI_*, LD_*, PATH, PYTHONPATH, PYTHONHOME, PYTHONSTARTUP, HOME)", name, envReservedMsg)
	}
	return ""
}

func envLabel(appID, name string) string { return "env:" + appID + ":" + name }

func invalid(format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
}

// ListEnv implements AppService.ListEnv.
func (s *Service) ListEnv(ctx context.Context, req *connect.Request[v1.ListEnvRequest]) (*connect.Response[v1.ListEnvResponse], error) {
	a, err := s.owned(ctx, req.Msg.GetIdOrName())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.ListEnvResponse{Vars: envProto(a.Env)}), nil
}

// SetEnv implements AppService.SetEnv.
func (s *Service) SetEnv(ctx context.Context, req *connect.Request[v1.SetEnvRequest]) (*connect.Response[v1.SetEnvResponse], error) {
	a, err := s.owned(ctx, req.Msg.GetIdOrName())
	if err != nil {
		return nil, err
	}
	if len(req.Msg.GetVars()) == 0 {
		return nil, invalid("no variables given: send at least one name and value")
	}
	env := append([]store.EnvVar(nil), a.Env...)
	var names []string
	for _, as := range req.Msg.GetVars() {
		if msg := checkEnvName(as.GetName()); msg != "" {
			return nil, invalid("%s", msg)
		}
		if len(as.GetValue()) > maxEnvValue {
			return nil, invalid("variable %s: value is %d bytes, at most %d KB", as.GetName(), len(as.GetValue()), maxEnvValue>>10)
		}
		if strings.ContainsRune(as.GetValue(), 0) {
			return nil, invalid("variable %s: value contains a NUL byte, which an environment cannot hold", as.GetName())
		}
		v := store.EnvVar{Name: as.GetName(), Secret: as.GetSecret()}
		if v.Secret {
			if v.Sealed, err = s.cfg.Secrets.Seal([]byte(as.GetValue()), envLabel(a.ID, v.Name)); err != nil {
				return nil, s.fail("seal secret", err)
			}
		} else {
			v.Value = as.GetValue()
		}
		env = putEnv(env, v)
		names = append(names, v.Name)
	}
	if err := checkEnvSize(env); err != nil {
		return nil, err
	}
	if err := s.changeEnv(ctx, a, env, "set "+strings.Join(names, ", ")); err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.SetEnvResponse{Vars: envProto(env)}), nil
}

// UnsetEnv implements AppService.UnsetEnv.
func (s *Service) UnsetEnv(ctx context.Context, req *connect.Request[v1.UnsetEnvRequest]) (*connect.Response[v1.UnsetEnvResponse], error) {
	a, err := s.owned(ctx, req.Msg.GetIdOrName())
	if err != nil {
		return nil, err
	}
	drop := map[string]bool{}
	for _, n := range req.Msg.GetNames() {
		drop[n] = true
	}
	var env []store.EnvVar
	for _, v := range a.Env {
		if drop[v.Name] {
			delete(drop, v.Name)
			continue
		}
		env = append(env, v)
	}
	if len(drop) > 0 {
		missing := make([]string, 0, len(drop))
		for n := range drop {
			missing = append(missing, n)
		}
		sort.Strings(missing)
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("app %s has no variable %s", a.Name, strings.Join(missing, ", ")))
	}
	if len(req.Msg.GetNames()) == 0 {
		return nil, invalid("no names given: name the variables to remove")
	}
	if err := s.changeEnv(ctx, a, env, "unset "+strings.Join(req.Msg.GetNames(), ", ")); err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.UnsetEnvResponse{Vars: envProto(env)}), nil
}

func putEnv(env []store.EnvVar, v store.EnvVar) []store.EnvVar {
	for i := range env {
		if env[i].Name == v.Name {
			env[i] = v
			return env
		}
	}
	env = append(env, v)
	sort.Slice(env, func(i, j int) bool { return env[i].Name < env[j].Name })
	return env
}

func checkEnvSize(env []store.EnvVar) error {
	if len(env) > maxEnvVars {
		return invalid("%d variables: an app may have at most %d", len(env), maxEnvVars)
	}
	total := 0
	for _, v := range env {
		total += len(v.Name) + len(v.Value) + len(v.Sealed)
	}
	if total > maxEnvTotal {
		return invalid("variables total %d KB: at most %d KB per app", (total+1023)>>10, maxEnvTotal>>10)
	}
	return nil
}

// changeEnv stores env as a's environment under a new revision and, if a is
// deployed, re-points its route at that revision, so the edge serves the
// next request from a runner started with the new values.
func (s *Service) changeEnv(ctx context.Context, a *store.App, env []store.EnvVar, what string) error {
	rev := store.NewID()
	if err := s.cfg.Store.SetEnv(ctx, a.ID, env, rev); err != nil {
		return s.fail("set env", err)
	}
	a.Env, a.EnvRev = env, rev
	if a.DeployedVersion != "" {
		if _, err := s.publishRoute(ctx, a); err != nil {
			return s.fail("publish route", err)
		}
	}
	s.lifecycle(ctx, a.ID, v1.EventKind_EVENT_KIND_ENV_CHANGED, a.DeployedVersion, "environment changed: %s; the app restarts on its next request", what)
	return nil
}

// RestartApps gives each of appIDs a new environment revision, so that the
// edge serves its next request from a new runner started with the
// environment as it is now (for example after the platform rotated the
// app's database credentials). Apps that no longer exist are skipped.
func (s *Service) RestartApps(ctx context.Context, appIDs ...string) error {
	var errs []error
	for _, id := range appIDs {
		a, err := s.cfg.Store.AppByID(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			errs = append(errs, err)
			continue
		}
		rev := store.NewID()
		if err := s.cfg.Store.SetEnvRev(ctx, id, rev); err != nil {
			errs = append(errs, err)
			continue
		}
		a.EnvRev = rev
		if a.DeployedVersion != "" {
			if _, err := s.publishRoute(ctx, a); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Env returns the environment the app of route starts with: its
// variables, its secrets opened, and the platform's variables, which win.
// It implements the gateway's EnvSource. The route normally carries it,
// sealed when the route was written, so a cold start reads no database;
// a route without it (written before an upgrade, or whose key is gone)
// has it computed from the database.
func (s *Service) Env(ctx context.Context, route *v1.Route) (map[string]string, error) {
	if sealed := route.GetSealedEnv(); len(sealed) > 0 {
		b, err := s.cfg.Secrets.Open(sealed, routeEnvLabel(route.GetAppId(), route.GetEnvRev()))
		if err == nil {
			var e v1.AppEnv
			if err := proto.Unmarshal(b, &e); err == nil {
				return e.GetVars(), nil
			}
		}
		s.cfg.Logger.Warn("the route's sealed environment does not open: reading it from the database", "app", route.GetSlug(), "err", err)
	}
	a, err := s.cfg.Store.AppByID(ctx, route.GetAppId())
	if err != nil {
		return nil, err
	}
	return s.appEnv(ctx, a)
}

// appEnv computes app a's environment from its record and the platform.
func (s *Service) appEnv(ctx context.Context, a *store.App) (map[string]string, error) {
	env := make(map[string]string, len(a.Env)+1)
	for _, v := range a.Env {
		if !v.Secret {
			env[v.Name] = v.Value
			continue
		}
		if len(v.Sealed) == 0 {
			continue // a clone's secret, not set yet
		}
		pt, err := s.cfg.Secrets.Open(v.Sealed, envLabel(a.ID, v.Name))
		if err != nil {
			return nil, fmt.Errorf("open secret %s of %s: %w", v.Name, a.Name, err)
		}
		env[v.Name] = string(pt)
	}
	if s.cfg.PlatformEnv != nil {
		pe, err := s.cfg.PlatformEnv.AppEnv(ctx, a)
		if err != nil {
			return nil, fmt.Errorf("platform env of %s: %w", a.Name, err)
		}
		for k, v := range pe {
			env[k] = v
		}
	}
	return env, nil
}

func envProto(env []store.EnvVar) []*v1.EnvVar {
	out := make([]*v1.EnvVar, len(env))
	for i, v := range env {
		out[i] = &v1.EnvVar{Name: v.Name, Secret: v.Secret, Set: !v.Secret || len(v.Sealed) > 0}
		if !v.Secret {
			out[i].Value = v.Value
		}
	}
	return out
}
