package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gofastapi/gofastapi/controlplane/admin"
	"github.com/gofastapi/gofastapi/controlplane/apps"
	"github.com/gofastapi/gofastapi/controlplane/assistant"
	"github.com/gofastapi/gofastapi/controlplane/auth"
	"github.com/gofastapi/gofastapi/controlplane/deps"
	"github.com/gofastapi/gofastapi/controlplane/embedded"
	"github.com/gofastapi/gofastapi/controlplane/logstore"
	"github.com/gofastapi/gofastapi/controlplane/observe"
	"github.com/gofastapi/gofastapi/controlplane/publish"
	"github.com/gofastapi/gofastapi/controlplane/ratelimit"
	"github.com/gofastapi/gofastapi/controlplane/secretbox"
	"github.com/gofastapi/gofastapi/controlplane/store"
	"github.com/gofastapi/gofastapi/controlplane/templates"
	"github.com/gofastapi/gofastapi/controlplane/validate"
	"github.com/gofastapi/gofastapi/gateway"
	"github.com/gofastapi/gofastapi/gateway/ownerlimit"
	"github.com/gofastapi/gofastapi/pool"
	"github.com/gofastapi/gofastapi/pool/local"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
	"github.com/gofastapi/gofastapi/web"
)

// runDev runs the embedded default: stores, control plane, pool and gateway
// in one process on one port, until ctx ends.
func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseDevConfig(args, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	obs, err := newObservability()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return err
	}
	// Start everything, registering how to stop it in reverse order.
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()

	mongoURI := cfg.MongoURI
	if mongoURI == "" {
		// FerretDB's own warnings and news are its diagnostics (a dump of
		// each error it answers, such as the TTL indexes the store asks
		// for at every start and falls back from), not the platform's:
		// its errors only, unless --log-level debug.
		ferretLog := log.With("component", "ferretdb")
		if cfg.LogLevel != "debug" {
			ferretLog = quieter(ferretLog, slog.LevelError)
		}
		fe, err := embedded.StartFerret(cfg.Data, ferretLog)
		if err != nil {
			return err
		}
		stops = append(stops, fe.Stop)
		mongoURI = fe.URI()
	}
	mc, err := mongo.Connect(options.Client().ApplyURI(mongoURI).SetTimeout(30 * time.Second).SetMonitor(obs.stores.MongoMonitor()))
	if err != nil {
		return fmt.Errorf("mongodb: %w", err)
	}
	stops = append(stops, func() { mc.Disconnect(context.Background()) })
	st, err := store.Open(ctx, mc, "gofastapi")
	if err != nil {
		return fmt.Errorf("platform database: %w", err)
	}
	if err := obs.startRecorder(cfg, st, log.With("component", "metrics")); err != nil {
		return err
	}
	stops = append(stops, obs.close)

	redisURL := cfg.RedisURL
	if redisURL == "" {
		rs, err := embedded.StartRedis(ctx, "redis-server")
		if err != nil {
			return err
		}
		stops = append(stops, rs.Stop)
		redisURL = rs.URL()
	}
	ropt, err := redis.ParseURL(redisURL)
	if err != nil {
		return fmt.Errorf("--redis-url: %w", err)
	}
	rdb := redis.NewClient(ropt)
	rdb.AddHook(obs.stores.RedisHook())
	stops = append(stops, func() { rdb.Close() })
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	// Only a process with local runners creates the runners' read-only
	// Redis user: with a shared pool manager (--pool-addr) it is the
	// operator's, and resetting its password would lock out runners.
	runnerRedis := redisURL
	if cfg.PoolAddr == "" {
		if runnerRedis, err = embedded.RunnerUser(ctx, rdb, redisURL); err != nil {
			log.Warn("runners get the platform's Redis credentials: this Redis refused to create a read-only user", "err", err)
			runnerRedis = redisURL
		}
	}

	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	h1, h2 := gateway.SplitHTTP2(l)

	validator, err := validate.New(validate.Config{Python: cfg.Python, Timeout: 20 * time.Second, Workers: 2})
	if err != nil {
		return err
	}
	stops = append(stops, validator.Close)
	pub := publish.New(rdb)
	logs := logstore.New(rdb, 2000)
	keys, err := secretbox.LoadOrCreate(cfg.SecretKeyFile)
	if err != nil {
		return err
	}
	tmpls, err := templates.NewService(templates.Config{Store: st, Validator: validator, Imports: validate.DefaultAllowedImports})
	if err != nil {
		return err
	}
	dbs, err := startDatabases(ctx, cfg, log, st, mc, keys, cfg.appURL(l.Addr()))
	if err != nil {
		return err
	}
	stops = append(stops, dbs.stop)
	// This process's own runners, unless a pool manager's serve its apps.
	var backend *local.Backend
	if cfg.PoolAddr == "" {
		agent, err := runnerCommand()
		if err != nil {
			return err
		}
		backend, err = local.New(local.Config{
			Command: agent, Python: cfg.Python, Dir: filepath.Join(cfg.Data, "runners"),
			RedisURL: runnerRedis, ReadyTimeout: cfg.ReadyTimeout, RunnerUIDs: cfg.RunnerUIDs, AppMemory: cfg.AppMemory,
			BundleCacheBytes: bundleCacheBytes, Logger: log.With("component", "runners"),
		})
		if err != nil {
			return err
		}
		stops = append(stops, backend.Close)
		warnSharedUser(log, cfg.RunnerUIDs)
	}
	var publisher apps.Publisher = pub
	if backend != nil && backend.BundleCache() != nil {
		publisher = cachingPublisher{Publisher: pub, cache: backend.BundleCache(), log: log.With("component", "apps")}
	}
	packages := admin.NewPackages(st, deps.DefaultAllowed)
	resolver, err := deps.New(deps.Config{
		Python: cfg.Python, Index: cfg.PackageIndex, Store: st, Publisher: pub, TempDir: filepath.Join(cfg.Data, "tmp"),
		Allowed: packages.AllowedPackages,
	})
	if err != nil {
		return err
	}
	appSvc, err := apps.NewService(apps.Config{
		Store: st, Publisher: publisher, Validator: validator, Deps: resolver, Logs: logs, Secrets: keys, Templates: tmpls, PlatformEnv: dbs.svc,
		URL: cfg.appURL(l.Addr()), Domain: cfg.Domain, Resolver: cfg.resolver(), Rechecks: ratelimit.New(rdb), Imports: admin.NewImports(st, validate.DefaultAllowedImports), Logger: log.With("component", "apps"),
	})
	if err != nil {
		return err
	}
	tmpls.SetApps(appSvc)
	dbs.svc.SetApps(appSvc)
	if cfg.DomainRecheck > 0 {
		recheckCtx, stopRecheck := context.WithCancel(ctx)
		stops = append(stops, stopRecheck)
		go appSvc.RecheckDomainsEvery(recheckCtx, cfg.DomainRecheck)
	}
	assistantCfg := assistant.Config{
		Store: st, Secrets: keys, Apps: appSvc, Databases: dbs.svc, Validator: appSvc,
		Imports: admin.NewImports(st, validate.DefaultAllowedImports), Limiter: ratelimit.New(rdb), Rate: cfg.AssistantRate,
		AnthropicURL: cfg.AssistantAnthropicURL, AllowPrivateEndpoints: cfg.AssistantPrivateEndpoints, Domain: cfg.Domain,
		Logger: log.With("component", "assistant"),
	}
	if cfg.PackageIndex != "" {
		assistantCfg.Packages = packages
	}
	assistantSvc, err := assistant.NewService(assistantCfg)
	if err != nil {
		return err
	}
	if n, err := appSvc.Resync(ctx); err != nil {
		return fmt.Errorf("rebuild routes: %w", err)
	} else if n > 0 {
		log.Info("rebuilt routes and bundles from the platform database", "apps", n)
	}

	var p *pool.Pool
	coldStart, event, err := obs.poolHooks(func() *pool.Pool { return p }, func(appID string, cs *v1.ColdStart) {
		logs.AppendColdStart(context.Background(), appID, cs)
	}, func(appID string, e *v1.Event) {
		logs.AppendEvent(context.Background(), appID, e)
	})
	if err != nil {
		return err
	}
	// Runners of this process's own pool, or of a shared pool manager's.
	var gwPool gateway.Pool
	var runnerStats admin.Runners
	if cfg.PoolAddr != "" {
		remote, err := newRemotePool(cfg, log)
		if err != nil {
			return err
		}
		stops = append(stops, remote.c.Close)
		gwPool, runnerStats = remote, remote
	} else {
		p, err = pool.New(pool.Config{
			Backend: backend, Warm: cfg.Warm, Max: cfg.MaxRunners, IdleTimeout: cfg.IdleTimeout,
			StartTimeout: 30 * time.Second, SpecializeTimeout: cfg.ReadyTimeout + 5*time.Second, StopGrace: 10 * time.Second,
			Log: func(appID string, t time.Time, stream, text string) {
				logs.Append(context.Background(), appID, logstore.Line{Time: t, Stream: stream, Text: text})
			},
			ColdStart: coldStart, Event: event,
			Logger: log.With("component", "pool"),
		})
		if err != nil {
			return err
		}
		stops = append(stops, p.Close)
		gwPool, runnerStats = poolAdapter{p, obs}, poolStats{p}
	}
	// The API: Connect, gRPC and gRPC-Web on one mux, reached through the
	// gateway (HTTP/1.1) or directly for HTTP/2 (gRPC over h2c).
	// The platform's own origins: the apex as the gateway serves it, and
	// behind a TLS terminator on 443.
	apex := strings.ToLower(cfg.Domain)
	origins := []string{"http://" + apex + portSuffix(l.Addr()), "https://" + apex}
	if scheme, port := cfg.publicBase(l.Addr()); !slices.Contains(origins, scheme+"://"+apex+port) {
		origins = append(origins, scheme+"://"+apex+port)
	}
	authSvc, err := auth.NewService(auth.Config{
		Users: st, Limiter: ratelimit.New(rdb), SessionTTL: 30 * 24 * time.Hour, Logger: log.With("component", "auth"),
		Rates: auth.RateLimits{PerAddress: cfg.SigninRateAddr, PerUser: cfg.SigninRateUser},
	})
	if err != nil {
		return err
	}
	// Every gateway replica counts each owner's requests together; a
	// deleted user's count goes with them.
	ownerCounts := ownerlimit.NewRedis(rdb)
	adminSvc, err := admin.NewService(admin.Config{
		Store: st, Runners: runnerStats, UserData: []admin.UserData{appSvc, tmpls, dbs.svc, assistantSvc, ownerCounts}, Templates: tmpls, Routes: appSvc, UserStorage: dbs.svc,
		DefaultImports: validate.DefaultAllowedImports, DefaultPackages: deps.DefaultAllowed, PackageIndex: cfg.PackageIndex, Logger: log.With("component", "admin"),
	})
	if err != nil {
		return err
	}
	apiHTTP, err := auth.NewHTTP(auth.HTTPConfig{
		Origins: origins,
		// Only the gateway dials the API's Unix socket (in the private
		// data directory), so only there are X-Forwarded-* believed.
		TrustedProxy: func(c net.Conn) bool { return c.LocalAddr().Network() == "unix" },
	})
	if err != nil {
		return err
	}
	metricsSvc, err := observe.NewService(observe.Config{Store: st, Logs: logs, Logger: log.With("component", "observe")})
	if err != nil {
		return err
	}
	interceptors := connect.WithInterceptors(obs.rpc, auth.NewInterceptor(st, origins, log.With("component", "auth")))
	mux := http.NewServeMux()
	mux.Handle(gofastapiv1connect.NewAuthServiceHandler(authSvc, interceptors))
	mux.Handle(gofastapiv1connect.NewAppServiceHandler(appSvc, interceptors))
	mux.Handle(gofastapiv1connect.NewDatabaseServiceHandler(dbs.svc, interceptors))
	mux.Handle(gofastapiv1connect.NewAdminServiceHandler(adminSvc, interceptors))
	mux.Handle(gofastapiv1connect.NewTemplateServiceHandler(tmpls, interceptors))
	mux.Handle(gofastapiv1connect.NewMetricsServiceHandler(metricsSvc, interceptors))
	mux.Handle(gofastapiv1connect.NewAssistantServiceHandler(assistantSvc, interceptors))
	reflector := grpcreflect.NewStaticReflector(gofastapiv1connect.AuthServiceName, gofastapiv1connect.AppServiceName, gofastapiv1connect.DatabaseServiceName,
		gofastapiv1connect.AdminServiceName, gofastapiv1connect.TemplateServiceName, gofastapiv1connect.MetricsServiceName)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	// Every other GET on the apex is the web editor.
	mux.Handle("/", web.Handler())
	if cfg.Debug && p != nil {
		mux.HandleFunc("/debug/pool", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			warm, claimed := p.Runners()
			json.NewEncoder(w).Encode(map[string]any{"stats": p.Stats(), "warm": warm, "claimed": claimed, "pid": os.Getpid()})
		})
	}

	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	api := &http.Server{Handler: dbs.withViewer(apiHTTP.Handler(mux)), ConnContext: apiHTTP.ConnContext, Protocols: &protocols, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	// The gateway reaches the API over a Unix socket in the private data
	// directory: real socket semantics (deadlines, keep-alive) without a port.
	apiSock := filepath.Join(cfg.Data, "api.sock")
	os.Remove(apiSock)
	apiL, err := net.Listen("unix", apiSock)
	if err != nil {
		return err
	}
	go api.Serve(apiL)
	go api.Serve(h2)
	stops = append(stops, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		api.Shutdown(sctx)
	})

	gw, err := gateway.New(gateway.Config{
		Domain: cfg.Domain, API: func() (net.Conn, error) { return net.Dial("unix", apiSock) }, Routes: appSvc, Domains: appSvc, Pool: gwPool, Env: appSvc,
		Recorder:           obs.gatewayRecorder(),
		OwnerCounts:        ownerCounts,
		MaxRequestBodySize: cfg.MaxBody, MaxConnsPerIP: cfg.MaxConnsPerIP, ReadTimeout: 30 * time.Second, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute,
		UpstreamTimeout: time.Minute, ColdStartTimeout: cfg.ReadyTimeout + 10*time.Second, Concurrency: 64 << 10,
		Logger: log.With("component", "gateway"),
	})
	if err != nil {
		return err
	}
	if cfg.WarmOnDeploy {
		appSvc.SetWarmer(gw)
	}
	subCtx, cancelSub := context.WithCancel(ctx)
	stops = append(stops, cancelSub)
	if err := pub.Subscribe(subCtx, gw.Invalidate); err != nil {
		return err
	}

	internal, stopInternal, err := obs.serveInternal(cfg.MetricsAddr, log, readiness(mc, rdb)...)
	if err != nil {
		return err
	}
	stops = append(stops, stopInternal)
	serveErr := make(chan error, 1)
	go func() { serveErr <- gw.Serve(h1) }()
	scheme, port := cfg.publicBase(l.Addr())
	fmt.Fprintf(stdout, "gofastapi dev: API and editor at http://%s%s, apps at %s://NAME.%s%s (data in %s)\n",
		cfg.Domain, portSuffix(l.Addr()), scheme, cfg.Domain, port, cfg.Data)
	if internal != nil {
		fmt.Fprintf(stdout, "gofastapi dev: operators' /metrics, /healthz and /readyz at http://%s\n", internal)
	}
	log.Info("listening", "addr", l.Addr().String())

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := gw.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("gateway shutdown", "err", err)
	}
	l.Close()
	return nil
}

func portSuffix(a net.Addr) string {
	if p := a.(*net.TCPAddr).Port; p != 80 {
		return fmt.Sprintf(":%d", p)
	}
	return ""
}

// poolAdapter gives the gateway the pool through the gateway's own Pool
// interface.
// It tells the per-app recorder which runner serves which app.
type poolAdapter struct {
	p   *pool.Pool
	obs *observability
}

func (a poolAdapter) Claim(ctx context.Context, req *v1.SpecializeRequest, picked func(addr string)) (gateway.Runner, error) {
	r, err := a.p.ClaimAhead(ctx, req, picked)
	if err != nil {
		return nil, err
	}
	a.obs.claimed(req.GetAppId(), r)
	return r, nil
}

// poolStats gives the admin service the pool's figures through the admin
// package's own Runners interface.
type poolStats struct{ p *pool.Pool }

func (a poolStats) RunnerStats() (warm int, runningApps []string) {
	w, claimed := a.p.Runners()
	seen := map[string]bool{}
	for _, r := range claimed {
		if r.AppID != "" && !seen[r.AppID] {
			seen[r.AppID] = true
			runningApps = append(runningApps, r.AppID)
		}
	}
	return len(w), runningApps
}
