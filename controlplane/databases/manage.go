package databases

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gofastapi/gofastapi/controlplane/auth"
	"github.com/gofastapi/gofastapi/controlplane/store"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// fail logs an unexpected error and maps it for the client.
func (s *Service) fail(op string, err error) error {
	ce := connectError(err)
	if connect.CodeOf(ce) == connect.CodeInternal {
		s.cfg.Logger.Error(op, "err", err)
	}
	return ce
}

// owned returns the caller and their database named ref, provisioning
// the caller on first use.
func (s *Service) owned(ctx context.Context, ref string) (*store.User, *store.Database, error) {
	u, err := auth.User(ctx)
	if err != nil {
		return nil, nil, err
	}
	if _, err := s.ensure(ctx, u); err != nil {
		return nil, nil, err
	}
	if ref == "" {
		return nil, nil, invalid("name a database by name or id")
	}
	d, err := s.cfg.Store.OwnedDatabase(ctx, u.ID, ref)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, errNoDatabase
	}
	return u, d, err
}

func (s *Service) toProto(ctx context.Context, d *store.Database, apps []*store.App) *v1.Database {
	p := &v1.Database{Id: d.ID, Name: d.Name, StoreName: d.StoreName, Default: d.Default, CreatedAt: timestamppb.New(d.CreatedAt)}
	for _, a := range apps {
		p.Apps = append(p.Apps, a.Name)
	}
	if n, err := s.cfg.Sizer.Size(ctx, []string{d.StoreName}); err == nil {
		p.SizeBytes = n
	}
	return p
}

// ListDatabases implements DatabaseService.ListDatabases.
func (s *Service) ListDatabases(ctx context.Context, req *connect.Request[v1.ListDatabasesRequest]) (*connect.Response[v1.ListDatabasesResponse], error) {
	u, err := auth.User(ctx)
	if err != nil {
		return nil, err
	}
	dbs, err := s.ensure(ctx, u)
	if err != nil {
		return nil, s.fail("list databases", err)
	}
	use, err := s.appsOf(ctx, u.ID, dbs)
	if err != nil {
		return nil, s.fail("list databases", err)
	}
	lim := u.EffectiveLimits()
	res := &v1.ListDatabasesResponse{MaxDatabases: int32(lim.Databases), QuotaBytes: lim.StorageBytes, Username: u.Username}
	for _, d := range dbs {
		p := s.toProto(ctx, d, use[d.ID])
		res.UsedBytes += p.SizeBytes
		res.Databases = append(res.Databases, p)
	}
	return connect.NewResponse(res), nil
}

// CreateDatabase implements DatabaseService.CreateDatabase.
func (s *Service) CreateDatabase(ctx context.Context, req *connect.Request[v1.CreateDatabaseRequest]) (*connect.Response[v1.CreateDatabaseResponse], error) {
	u, err := auth.User(ctx)
	if err != nil {
		return nil, err
	}
	name := req.Msg.GetName()
	if err := checkName(name); err != nil {
		return nil, s.fail("create database", err)
	}
	if _, err := s.ensure(ctx, u); err != nil {
		return nil, s.fail("create database", err)
	}
	unlock := s.lock(u.ID)
	dbs, err := s.cfg.Store.ListDatabases(ctx, u.ID)
	if err != nil {
		unlock()
		return nil, s.fail("create database", err)
	}
	if limit := u.EffectiveLimits().Databases; limit > 0 && len(dbs) >= limit {
		unlock()
		return nil, s.fail("create database", &limitError{msg: fmt.Sprintf("database limit reached: you have %d of %d databases; delete one or ask an admin to raise the limit", len(dbs), limit)})
	}
	d := &store.Database{OwnerID: u.ID, Name: name, StoreName: u.Username + "_" + randomHex(4)}
	err = s.cfg.Store.CreateDatabase(ctx, d)
	unlock()
	if err != nil {
		return nil, s.fail("create database", err)
	}
	s.refresh(ctx, u.Username)
	return connect.NewResponse(&v1.CreateDatabaseResponse{Database: s.toProto(ctx, d, nil)}), nil
}

// GetDatabase implements DatabaseService.GetDatabase.
func (s *Service) GetDatabase(ctx context.Context, req *connect.Request[v1.GetDatabaseRequest]) (*connect.Response[v1.GetDatabaseResponse], error) {
	u, d, err := s.owned(ctx, req.Msg.GetDatabase())
	if err != nil {
		return nil, s.fail("get database", err)
	}
	dbs, err := s.cfg.Store.ListDatabases(ctx, u.ID)
	if err != nil {
		return nil, s.fail("get database", err)
	}
	use, err := s.appsOf(ctx, u.ID, dbs)
	if err != nil {
		return nil, s.fail("get database", err)
	}
	return connect.NewResponse(&v1.GetDatabaseResponse{Database: s.toProto(ctx, d, use[d.ID])}), nil
}

// RenameDatabase implements DatabaseService.RenameDatabase.
func (s *Service) RenameDatabase(ctx context.Context, req *connect.Request[v1.RenameDatabaseRequest]) (*connect.Response[v1.RenameDatabaseResponse], error) {
	u, d, err := s.owned(ctx, req.Msg.GetDatabase())
	if err != nil {
		return nil, s.fail("rename database", err)
	}
	name := req.Msg.GetNewName()
	if err := checkName(name); err != nil {
		return nil, s.fail("rename database", err)
	}
	if err := s.cfg.Store.RenameDatabase(ctx, u.ID, d.ID, name); err != nil {
		return nil, s.fail("rename database", err)
	}
	d.Name = name
	return connect.NewResponse(&v1.RenameDatabaseResponse{Database: s.toProto(ctx, d, nil)}), nil
}

// SetDefaultDatabase implements DatabaseService.SetDefaultDatabase.
func (s *Service) SetDefaultDatabase(ctx context.Context, req *connect.Request[v1.SetDefaultDatabaseRequest]) (*connect.Response[v1.SetDefaultDatabaseResponse], error) {
	u, d, err := s.owned(ctx, req.Msg.GetDatabase())
	if err != nil {
		return nil, s.fail("set default database", err)
	}
	before, err := s.cfg.Store.ListDatabases(ctx, u.ID)
	if err != nil {
		return nil, s.fail("set default database", err)
	}
	old, err := s.appsOf(ctx, u.ID, before)
	if err != nil {
		return nil, s.fail("set default database", err)
	}
	if err := s.cfg.Store.SetDefaultDatabase(ctx, u.ID, d.ID); err != nil {
		return nil, s.fail("set default database", err)
	}
	// The apps that followed the old default now use the new one.
	var moved []string
	for _, od := range before {
		if od.Default && od.ID != d.ID {
			for _, a := range old[od.ID] {
				moved = append(moved, a.ID)
			}
		}
	}
	s.restart(ctx, moved)
	return connect.NewResponse(&v1.SetDefaultDatabaseResponse{}), nil
}

// DeleteDatabase implements DatabaseService.DeleteDatabase.
func (s *Service) DeleteDatabase(ctx context.Context, req *connect.Request[v1.DeleteDatabaseRequest]) (*connect.Response[v1.DeleteDatabaseResponse], error) {
	u, d, err := s.owned(ctx, req.Msg.GetDatabase())
	if err != nil {
		return nil, s.fail("delete database", err)
	}
	defer s.lock(u.ID)()
	dbs, err := s.cfg.Store.ListDatabases(ctx, u.ID)
	if err != nil {
		return nil, s.fail("delete database", err)
	}
	if len(dbs) <= 1 {
		return nil, s.fail("delete database", errLast)
	}
	use, err := s.appsOf(ctx, u.ID, dbs)
	if err != nil {
		return nil, s.fail("delete database", err)
	}
	if apps := use[d.ID]; len(apps) > 0 {
		e := &inUseError{name: d.Name}
		for _, a := range apps {
			e.apps = append(e.apps, a.Name)
		}
		return nil, s.fail("delete database", e)
	}
	if err := s.cfg.Store.DeleteDatabase(ctx, d.ID); err != nil {
		return nil, s.fail("delete database", err)
	}
	// The front refuses the database from here on, before its data goes.
	s.refresh(ctx, u.Username)
	if err := s.cfg.Data.Database(d.StoreName).Drop(ctx); err != nil {
		return nil, s.fail("delete database", fmt.Errorf("drop %s: %w", d.StoreName, err))
	}
	if d.Default {
		for _, o := range dbs {
			if o.ID != d.ID {
				if err := s.cfg.Store.SetDefaultDatabase(ctx, u.ID, o.ID); err != nil {
					return nil, s.fail("delete database", err)
				}
				break
			}
		}
	}
	return connect.NewResponse(&v1.DeleteDatabaseResponse{}), nil
}

// SetAppDatabase implements DatabaseService.SetAppDatabase.
func (s *Service) SetAppDatabase(ctx context.Context, req *connect.Request[v1.SetAppDatabaseRequest]) (*connect.Response[v1.SetAppDatabaseResponse], error) {
	u, err := auth.User(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := s.ensure(ctx, u); err != nil {
		return nil, s.fail("set app database", err)
	}
	a, err := s.cfg.Store.OwnedApp(ctx, u.ID, req.Msg.GetApp())
	if errors.Is(err, store.ErrNotFound) {
		return nil, s.fail("set app database", errNoApp)
	} else if err != nil {
		return nil, s.fail("set app database", err)
	}
	dbID := ""
	if ref := req.Msg.GetDatabase(); ref != "" {
		_, d, err := s.owned(ctx, ref)
		if err != nil {
			return nil, s.fail("set app database", err)
		}
		dbID = d.ID
	}
	if err := s.cfg.Store.SetAppDatabase(ctx, u.ID, a.ID, dbID); err != nil {
		return nil, s.fail("set app database", err)
	}
	s.restart(ctx, []string{a.ID})
	return connect.NewResponse(&v1.SetAppDatabaseResponse{}), nil
}

// RotateCredentials implements DatabaseService.RotateCredentials.
func (s *Service) RotateCredentials(ctx context.Context, req *connect.Request[v1.RotateCredentialsRequest]) (*connect.Response[v1.RotateCredentialsResponse], error) {
	u, err := auth.User(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := s.ensure(ctx, u); err != nil {
		return nil, s.fail("rotate credentials", err)
	}
	a, err := s.cfg.Store.DBAccount(ctx, u.ID)
	if err != nil {
		return nil, s.fail("rotate credentials", err)
	}
	if a.Password, err = s.cfg.Key.Seal([]byte(newPassword()), sealLabel(u.ID)); err != nil {
		return nil, s.fail("rotate credentials", err)
	}
	a.RotatedAt = timestamppb.Now().AsTime()
	if err := s.cfg.Store.PutDBAccount(ctx, a); err != nil {
		return nil, s.fail("rotate credentials", err)
	}
	s.refresh(ctx, u.Username)
	apps, err := s.cfg.Store.ListApps(ctx, u.ID)
	if err != nil {
		return nil, s.fail("rotate credentials", err)
	}
	ids := make([]string, len(apps))
	for i, ap := range apps {
		ids[i] = ap.ID
	}
	s.restart(ctx, ids)
	return connect.NewResponse(&v1.RotateCredentialsResponse{RestartedApps: int32(len(ids))}), nil
}

// RotateViewerCredentials implements DatabaseService.RotateViewerCredentials.
func (s *Service) RotateViewerCredentials(ctx context.Context, req *connect.Request[v1.RotateViewerCredentialsRequest]) (*connect.Response[v1.RotateViewerCredentialsResponse], error) {
	u, err := auth.User(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := s.ensure(ctx, u); err != nil {
		return nil, s.fail("rotate viewer credentials", err)
	}
	pw := newPassword()
	sum := sha256.Sum256([]byte(pw))
	if err := s.cfg.Store.SetViewerHash(ctx, u.ID, sum[:]); err != nil {
		return nil, s.fail("rotate viewer credentials", err)
	}
	return connect.NewResponse(&v1.RotateViewerCredentialsResponse{Username: u.Username, Password: pw, Url: s.cfg.ViewerURL(u.Username)}), nil
}
