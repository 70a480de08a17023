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
	"strings"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gofastapi/gofastapi/controlplane/admin"
	"github.com/gofastapi/gofastapi/controlplane/apps"
	"github.com/gofastapi/gofastapi/controlplane/auth"
	"github.com/gofastapi/gofastapi/controlplane/embedded"
	"github.com/gofastapi/gofastapi/controlplane/logstore"
	"github.com/gofastapi/gofastapi/controlplane/publish"
	"github.com/gofastapi/gofastapi/controlplane/ratelimit"
	"github.com/gofastapi/gofastapi/controlplane/store"
	"github.com/gofastapi/gofastapi/controlplane/validate"
	"github.com/gofastapi/gofastapi/gateway"
	"github.com/gofastapi/gofastapi/pool"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

// runDev runs the embedded default: stores, control plane, pool and gateway
// in one process on one port, until ctx ends.
func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseDevConfig(args, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
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
		fe, err := embedded.StartFerret(cfg.Data, log.With("component", "ferretdb"))
		if err != nil {
			return err
		}
		stops = append(stops, fe.Stop)
		mongoURI = fe.URI()
	}
	mc, err := mongo.Connect(options.Client().ApplyURI(mongoURI).SetTimeout(30 * time.Second))
	if err != nil {
		return fmt.Errorf("mongodb: %w", err)
	}
	stops = append(stops, func() { mc.Disconnect(context.Background()) })
	st, err := store.Open(ctx, mc, "gofastapi")
	if err != nil {
		return fmt.Errorf("platform database: %w", err)
	}

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
	stops = append(stops, func() { rdb.Close() })
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
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
	appSvc, err := apps.NewService(apps.Config{
		Store: st, Publisher: pub, Validator: validator, Logs: logs,
		URL: cfg.appURL(l.Addr()), Imports: admin.NewImports(st, validate.DefaultAllowedImports), Logger: log.With("component", "apps"),
	})
	if err != nil {
		return err
	}
	if n, err := appSvc.Resync(ctx); err != nil {
		return fmt.Errorf("rebuild routes: %w", err)
	} else if n > 0 {
		log.Info("rebuilt routes and bundles from the platform database", "apps", n)
	}

	gwPool, runnerStats, p, stopPool, err := devPool(ctx, cfg, rdb, redisURL, pool.Config{
		Warm: cfg.Warm, Max: cfg.MaxRunners, IdleTimeout: cfg.IdleTimeout,
		StartTimeout: 30 * time.Second, SpecializeTimeout: cfg.ReadyTimeout + 5*time.Second, StopGrace: 10 * time.Second,
		Log: func(appID string, t time.Time, stream, text string) {
			logs.Append(context.Background(), appID, logstore.Line{Time: t, Stream: stream, Text: text})
		},
		ColdStart: func(appID string, cs *v1.ColdStart) {
			logs.AppendColdStart(context.Background(), appID, cs)
		},
		Logger: log.With("component", "pool"),
	}, log)
	if err != nil {
		return err
	}
	stops = append(stops, stopPool)
	// The API: Connect, gRPC and gRPC-Web on one mux, reached through the
	// gateway (HTTP/1.1) or directly for HTTP/2 (gRPC over h2c).
	// The platform's own origins: the apex as the gateway serves it, and
	// behind a TLS terminator on 443.
	apex := strings.ToLower(cfg.Domain)
	origins := []string{"http://" + apex + portSuffix(l.Addr()), "https://" + apex}
	authSvc, err := auth.NewService(auth.Config{
		Users: st, Limiter: ratelimit.New(rdb), SessionTTL: 30 * 24 * time.Hour, Logger: log.With("component", "auth"),
		Rates: auth.RateLimits{PerAddress: cfg.SigninRateAddr, PerUser: cfg.SigninRateUser},
	})
	if err != nil {
		return err
	}
	adminSvc, err := admin.NewService(admin.Config{
		Store: st, Runners: runnerStats, UserData: []admin.UserData{appSvc},
		DefaultImports: validate.DefaultAllowedImports, Logger: log.With("component", "admin"),
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
	interceptors := connect.WithInterceptors(auth.NewInterceptor(st, origins, log.With("component", "auth")))
	mux := http.NewServeMux()
	mux.Handle(gofastapiv1connect.NewAuthServiceHandler(authSvc, interceptors))
	mux.Handle(gofastapiv1connect.NewAppServiceHandler(appSvc, interceptors))
	mux.Handle(gofastapiv1connect.NewAdminServiceHandler(adminSvc, interceptors))
	reflector := grpcreflect.NewStaticReflector(gofastapiv1connect.AuthServiceName, gofastapiv1connect.AppServiceName, gofastapiv1connect.AdminServiceName)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
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
	api := &http.Server{Handler: apiHTTP.Handler(mux), ConnContext: apiHTTP.ConnContext, Protocols: &protocols, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
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
		Domain: cfg.Domain, API: func() (net.Conn, error) { return net.Dial("unix", apiSock) }, Routes: appSvc, Pool: gwPool,
		MaxRequestBodySize: cfg.MaxBody, MaxConnsPerIP: cfg.MaxConnsPerIP, ReadTimeout: 30 * time.Second, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute,
		UpstreamTimeout: time.Minute, ColdStartTimeout: cfg.ReadyTimeout + 10*time.Second, Concurrency: 64 << 10,
		Logger: log.With("component", "gateway"),
	})
	if err != nil {
		return err
	}
	subCtx, cancelSub := context.WithCancel(ctx)
	stops = append(stops, cancelSub)
	if err := pub.Subscribe(subCtx, gw.Invalidate); err != nil {
		return err
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- gw.Serve(h1) }()
	url := "http://" + cfg.Domain + portSuffix(l.Addr())
	fmt.Fprintf(stdout, "gofastapi dev: API and editor at %s, apps at http://NAME.%s%s (data in %s)\n", url, cfg.Domain, portSuffix(l.Addr()), cfg.Data)
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
type poolAdapter struct{ p *pool.Pool }

func (a poolAdapter) Claim(ctx context.Context, req *v1.SpecializeRequest) (gateway.Runner, error) {
	r, err := a.p.Claim(ctx, req)
	if err != nil {
		return nil, err
	}
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
