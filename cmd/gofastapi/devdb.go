package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/gofastapi/gofastapi/controlplane/databases"
	"github.com/gofastapi/gofastapi/controlplane/dbfront"
	"github.com/gofastapi/gofastapi/controlplane/mongousers"
	"github.com/gofastapi/gofastapi/controlplane/secretbox"
	"github.com/gofastapi/gofastapi/controlplane/store"
)

// devDatabases is the platform database of the embedded default: the
// database service and the wire front apps connect through.
type devDatabases struct {
	svc   *databases.Service
	front *dbfront.Front
	l     net.Listener
	// stopUsers stops retrying failed MongoDB user syncs (--db-mongo-users).
	stopUsers func()
}

// startDatabases starts the wire front on a loopback port in front of the
// store and the database service behind it.
func startDatabases(ctx context.Context, cfg *devConfig, log *slog.Logger, st *store.Store, mc *mongo.Client, keys *secretbox.Keyring, appURL func(string) string) (*devDatabases, error) {
	if err := st.EnsureDatabaseIndexes(ctx); err != nil {
		return nil, fmt.Errorf("platform database: %w", err)
	}
	dial, err := storeDialer(cfg)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", cfg.DBFrontAddr)
	if err != nil {
		return nil, fmt.Errorf("--db-front-addr: %w", err)
	}
	d := &devDatabases{l: l}
	sizer := dbfront.StoreSizer{Client: mc}
	d.svc, err = databases.NewService(databases.Config{
		Store: st, Data: mc, Sizer: sizer, Key: keys, MongoAddr: l.Addr().String(), QueryTimeout: cfg.DBQueryTimeout,
		ViewerURL: func(username string) string { return appURL(databases.ViewerHostPrefix + username) },
		Logger:    log.With("component", "databases"),
	})
	if err != nil {
		l.Close()
		return nil, err
	}
	d.front, err = dbfront.New(dbfront.Config{
		Dial: dial, Accounts: d.svc, Sizer: sizer,
		QueryTimeout: cfg.DBQueryTimeout, MaxConnsPerUser: cfg.DBMaxConnsPerUser, MaxPending: 1024,
		SignInUpstream: cfg.DBMongoUsers,
		Logger:         log.With("component", "dbfront"),
	})
	if err != nil {
		l.Close()
		return nil, err
	}
	if !cfg.DBMongoUsers {
		d.svc.SetWatchers(d.front)
		go d.front.Serve(l)
		return d, nil
	}
	users, err := startMongoUsers(ctx, cfg, log, mc, d.svc)
	if err != nil {
		l.Close()
		return nil, err
	}
	// MongoDB's user first: a connection the front accepts with a new
	// password signs in to MongoDB with it.
	d.svc.SetWatchers(users, d.front)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); users.Run(runCtx, mongoUsersRetry) }()
	d.stopUsers = func() { cancel(); <-done }
	go d.front.Serve(l)
	return d, nil
}

// mongoUsersRetry is how often MongoDB users whose sync failed are synced
// again.
const mongoUsersRetry = 30 * time.Second

// startMongoUsers makes MongoDB's users match every database account
// (--db-mongo-users) before apps can connect. An account that fails is
// logged and retried (Sync.Run); it does not stop the platform, whose
// other users' apps work.
func startMongoUsers(ctx context.Context, cfg *devConfig, log *slog.Logger, mc *mongo.Client, accts mongousers.Accounts) (*mongousers.Sync, error) {
	log = log.With("component", "mongousers")
	users, err := mongousers.New(mongousers.Config{Admin: mc, Accounts: accts, Timeout: 30 * time.Second, Logger: log})
	if err != nil {
		return nil, err
	}
	failed, err := users.SyncAll(ctx)
	if err != nil {
		log.Error("sync MongoDB users at start: apps whose MongoDB user is missing or stale cannot sign in until it is synced (at their account's next change or the next start)", "err", err)
	} else {
		log.Info("MongoDB users in step with the database accounts", "failed", failed)
	}
	return users, nil
}

// stop closes the front and its connections.
func (d *devDatabases) stop() {
	if d.stopUsers != nil {
		d.stopUsers()
	}
	d.l.Close()
	d.front.Close()
}

// withViewer serves the data viewer's hosts (mongo-{user}.{domain}, which
// the gateway forwards here) and everything else with api.
func (d *devDatabases) withViewer(api http.Handler) http.Handler {
	viewer := d.svc.Viewer()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if databases.IsViewerHost(r.Host) {
			viewer.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// storeDialer returns how the front reaches the store: the embedded
// FerretDB's Unix socket in the private data directory, or the first host
// of --mongo-uri (where, with --db-mongo-users, the front signs each
// connection in as the app's owner).
func storeDialer(cfg *devConfig) (func(context.Context) (net.Conn, error), error) {
	network, addr := "unix", filepath.Join(cfg.Data, "mongo.sock")
	if cfg.MongoURI != "" {
		cs, err := connstring.ParseAndValidate(cfg.MongoURI)
		if err != nil || len(cs.Hosts) == 0 {
			return nil, fmt.Errorf("--mongo-uri: no host for the database front: %v", err)
		}
		network, addr = "tcp", cs.Hosts[0]
		if strings.HasSuffix(addr, ".sock") {
			network = "unix"
		}
	}
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}, nil
}
