package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/gofastapi/gofastapi/controlplane/embedded"
	"github.com/gofastapi/gofastapi/controlplane/logstore"
	"github.com/gofastapi/gofastapi/controlplane/telemetry"
	"github.com/gofastapi/gofastapi/gateway"
	"github.com/gofastapi/gofastapi/pool"
	"github.com/gofastapi/gofastapi/pool/kube"
	"github.com/gofastapi/gofastapi/pool/local"
	"github.com/gofastapi/gofastapi/pool/poolrpc"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// poolTokenEnv names the environment variable with the pool service's
// shared token (gateways and pool manager alike).
const poolTokenEnv = "GOFASTAPI_POOL_TOKEN"

// runnerControlKeyEnv names the environment variable with the key that
// runner pods' control tokens derive from (kube.Config.ControlKey). Only
// the pool manager holds it; without it the pool token is the key, which
// the gateways hold too.
const runnerControlKeyEnv = "GOFASTAPI_RUNNER_CONTROL_KEY"

// poolConfig is every setting of `gofastapi pool`.
type poolConfig struct {
	Backend      string
	Listen       string
	RedisURL     string
	Python       string
	Data         string
	Warm         int
	MaxRunners   int
	IdleTimeout  time.Duration
	ReadyTimeout time.Duration
	LogLevel     string
	// RunnerUIDs are the users local runners' Python runs as (see
	// devConfig.RunnerUIDs).
	RunnerUIDs local.UIDRange
	AppMemory  int64
	// kube
	Kubeconfig     string
	Namespace      string
	LeaseNamespace string
	Lease          string
	Identity       string
	PodTemplate    string
	RunnerImage    string
	PoolName       string
}

func parsePoolConfig(args []string, stderr io.Writer) (*poolConfig, error) {
	c := &poolConfig{}
	host, _ := os.Hostname()
	fs := flag.NewFlagSet("gofastapi pool", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Backend, "backend", "local", "where runners run: local (child processes) or kube (pods)")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8090", "listen address of the PoolService (for the gateways)")
	fs.StringVar(&c.RedisURL, "redis-url", os.Getenv("REDIS_URL"), "Redis URL: app logs and cold start records; with --backend local also the runners' bundle store [REDIS_URL]")
	fs.StringVar(&c.Python, "python", "/usr/bin/python3", "Python interpreter of local runners")
	fs.StringVar(&c.Data, "data", ".gofastapi-pool", "working directories of local runners")
	fs.IntVar(&c.Warm, "warm", 2, "generic runners kept warm")
	fs.IntVar(&c.MaxRunners, "max-runners", 50, "most runners at once")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 5*time.Minute, "an app idle this long loses its runner")
	fs.DurationVar(&c.ReadyTimeout, "ready-timeout", 10*time.Second, "bound on an app's import and first answer")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	readRunnerFlags := localRunnerFlags(fs) // with --backend local
	fs.StringVar(&c.Kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file (default: the in-cluster service account) [KUBECONFIG]")
	fs.StringVar(&c.Namespace, "namespace", "gofastapi-runners", "namespace of the runner pods")
	fs.StringVar(&c.LeaseNamespace, "lease-namespace", "gofastapi", "namespace of the leader election Lease")
	fs.StringVar(&c.Lease, "lease", "gofastapi-pool", "name of the leader election Lease")
	fs.StringVar(&c.Identity, "identity", host, "this manager's name in the election (the pod name)")
	fs.StringVar(&c.PodTemplate, "pod-template", "deploy/base/runner/runner-pod.yaml", "runner pod template (a v1 Pod in YAML)")
	fs.StringVar(&c.RunnerImage, "runner-image", "", "image of the runner container (default: the template's)")
	fs.StringVar(&c.PoolName, "pool-name", "runners", "value of the gofastapi.dev/pool label on this pool's pods")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage of gofastapi pool:")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nEnvironment:\n"+
			"  %s\n    \tthe token the gateways call the PoolService with (required)\n"+
			"  %s\n    \twith --backend kube, the key runner pods' control tokens derive from, which only\n"+
			"    \tthe pool manager should hold (default: the pool token, with a warning)\n", poolTokenEnv, runnerControlKeyEnv)
	}
	if err := fs.Parse(args); err != nil {
		return nil, errUsage
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("pool: unexpected argument %q", fs.Arg(0))
	}
	var err error
	if c.RunnerUIDs, c.AppMemory, err = readRunnerFlags(); err != nil {
		return nil, err
	}
	switch {
	case c.Backend != "local" && c.Backend != "kube":
		return nil, fmt.Errorf("--backend %q: want local or kube", c.Backend)
	case c.Backend == "local" && c.RedisURL == "":
		return nil, errors.New("--backend local needs --redis-url (the runners fetch bundles there)")
	case c.Warm < 0 || c.MaxRunners < 1 || c.MaxRunners < c.Warm:
		return nil, errors.New("--max-runners must be at least 1 and at least --warm (not negative)")
	case c.IdleTimeout <= 0 || c.ReadyTimeout <= 0:
		return nil, errors.New("--idle-timeout and --ready-timeout must be positive")
	case os.Getenv(poolTokenEnv) == "":
		return nil, fmt.Errorf("%s is empty: the gateways and the pool manager share this token", poolTokenEnv)
	}
	return c, nil
}

// runPool runs `gofastapi pool`: a pool manager serving PoolService to the
// gateways, with runners as local processes or as pods (one leader at a
// time through a Lease).
func runPool(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parsePoolConfig(args, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	pc := pool.Config{
		Warm: cfg.Warm, Max: cfg.MaxRunners, IdleTimeout: cfg.IdleTimeout,
		StartTimeout: 2 * time.Minute, SpecializeTimeout: cfg.ReadyTimeout + 5*time.Second, StopGrace: 10 * time.Second,
		Log:    func(appID string, t time.Time, stream, text string) { log.Info(text, "app", appID, "stream", stream) },
		Logger: log.With("component", "pool"),
	}
	if cfg.RedisURL != "" {
		ropt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return fmt.Errorf("--redis-url: %w", err)
		}
		rdb := redis.NewClient(ropt)
		defer rdb.Close()
		logs := logstore.New(rdb, 2000)
		pc.Log = func(appID string, t time.Time, stream, text string) {
			logs.Append(context.Background(), appID, logstore.Line{Time: t, Stream: stream, Text: text})
		}
		pc.ColdStart = func(appID string, cs *v1.ColdStart) { logs.AppendColdStart(context.Background(), appID, cs) }
		pc.Event = func(appID string, e *v1.Event) { logs.AppendEvent(context.Background(), appID, e) }
	}

	srv := poolrpc.NewServer(log.With("component", "poolrpc"))
	// The operators' metrics: the pool's runner gauges and cold starts, on
	// the pool's own (internal) listener beside /healthz.
	var current atomic.Pointer[pool.Pool]
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return err
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return err
	}
	cold, err := telemetry.NewPool(reg, func() telemetry.PoolCounts {
		p := current.Load()
		if p == nil {
			return telemetry.PoolCounts{} // not leading, or not started yet
		}
		st := p.Stats()
		return telemetry.PoolCounts{Warm: st.Warm, Claimed: st.Claimed, Starting: st.Starting, Total: st.Total}
	})
	if err != nil {
		return err
	}
	logCold := pc.ColdStart
	pc.ColdStart = func(appID string, cs *v1.ColdStart) {
		if logCold != nil {
			logCold(appID, cs)
		}
		cold.Observe(cs)
	}
	setPool := func(p *pool.Pool) {
		current.Store(p)
		srv.SetPool(p)
	}
	mux := http.NewServeMux()
	mux.Handle(srv.Handler(os.Getenv(poolTokenEnv)))
	mux.Handle("GET /metrics", telemetry.Handler(reg))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/leader", func(w http.ResponseWriter, r *http.Request) {
		if !srv.Leading() {
			http.Error(w, "not leading", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "leading\n")
	})
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(l)
	defer hs.Close()
	fmt.Fprintf(stdout, "gofastapi pool: %s backend, PoolService at http://%s\n", cfg.Backend, l.Addr())

	if cfg.Backend == "local" {
		agent, err := runnerCommand()
		if err != nil {
			return err
		}
		ctx2, cancel := context.WithTimeout(ctx, 30*time.Second)
		runnerRedis, err := runnerRedisURL(ctx2, cfg.RedisURL, log)
		cancel()
		if err != nil {
			return err
		}
		data, err := filepath.Abs(cfg.Data)
		if err != nil {
			return err
		}
		b, err := local.New(local.Config{Command: agent, Python: cfg.Python,
			Dir: filepath.Join(data, "runners"), RedisURL: runnerRedis, ReadyTimeout: cfg.ReadyTimeout, RunnerUIDs: cfg.RunnerUIDs, AppMemory: cfg.AppMemory})
		if err != nil {
			return err
		}
		warnSharedUser(log, cfg.RunnerUIDs)
		defer b.Close()
		pc.Backend = b
		p, err := pool.New(pc)
		if err != nil {
			return err
		}
		defer p.Close()
		setPool(p)
		<-ctx.Done()
		setPool(nil)
		return nil
	}

	client, err := kubeClient(cfg.Kubeconfig)
	if err != nil {
		return err
	}
	tmpl, err := kube.LoadTemplate(cfg.PodTemplate)
	if err != nil {
		return err
	}
	if cfg.RunnerImage != "" {
		tmpl.Spec.Containers[0].Image = cfg.RunnerImage
	}
	controlKey := os.Getenv(runnerControlKeyEnv)
	if controlKey == "" {
		log.Warn("runner pods' control tokens derive from the pool token, which the gateways hold too: give the pool manager a key of its own in " + runnerControlKeyEnv)
		controlKey = os.Getenv(poolTokenEnv)
	}
	return kube.RunManager(ctx, kube.ManagerConfig{
		Backend: kube.Config{Client: client, Namespace: cfg.Namespace, Pool: cfg.PoolName, Template: tmpl, ControlKey: []byte(controlKey), Logger: log.With("component", "kube")},
		Leader:  kube.LeaderConfig{Client: client, Namespace: cfg.LeaseNamespace, Lease: cfg.Lease, Identity: cfg.Identity, Logger: log.With("component", "leader")},
		Pool:    pc,
		Serve:   setPool,
	})
}

// runnerRedisURL creates the runners' read-only Redis user if it can.
func runnerRedisURL(ctx context.Context, redisURL string, log *slog.Logger) (string, error) {
	ropt, err := redis.ParseURL(redisURL)
	if err != nil {
		return "", fmt.Errorf("--redis-url: %w", err)
	}
	rdb := redis.NewClient(ropt)
	defer rdb.Close()
	u, err := embedded.RunnerUser(ctx, rdb, redisURL)
	if err != nil {
		log.Warn("runners get the platform's Redis credentials: this Redis refused to create a read-only user", "err", err)
		return redisURL, nil
	}
	return u, nil
}

// kubeClient reaches the API server from a kubeconfig file or, in a pod,
// with the service account.
func kubeClient(kubeconfig string) (kubernetes.Interface, error) {
	var rc *rest.Config
	var err error
	if kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w (outside a cluster, pass --kubeconfig)", err)
	}
	return kubernetes.NewForConfig(rc)
}

// remotePool gives the gateway a pool manager's runners through PoolService.
type remotePool struct{ c *poolrpc.Client }

// Claim does not call picked: the pool manager answers once the runner
// serves.
func (a remotePool) Claim(ctx context.Context, req *v1.SpecializeRequest, _ func(addr string)) (gateway.Runner, error) {
	r, err := a.c.Claim(ctx, req)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// RunnerStats implements the admin service's view of the runners this
// gateway holds (the pool manager knows the warm ones).
func (a remotePool) RunnerStats() (warm int, runningApps []string) {
	seen := map[string]bool{}
	for _, r := range a.c.Held() {
		if !seen[r.AppID()] {
			seen[r.AppID()] = true
			runningApps = append(runningApps, r.AppID())
		}
	}
	return 0, runningApps
}

// newRemotePool connects `gofastapi dev --pool-addr` to a shared pool
// manager's PoolService.
func newRemotePool(cfg *devConfig, log *slog.Logger) (remotePool, error) {
	token := os.Getenv(poolTokenEnv)
	if token == "" {
		return remotePool{}, fmt.Errorf("--pool-addr needs the pool token in %s", poolTokenEnv)
	}
	return remotePool{poolrpc.NewClient(cfg.PoolAddr, token, log.With("component", "poolrpc"))}, nil
}

// runnerCommand is how the local backend starts a runner agent: the
// gofastapi-runner binary beside this executable when there is one (it
// starts in a millisecond with ~10 MB resident, against ~25 ms and ~50 MB
// for this binary; `make build` puts both in bin/), else this executable's
// `runner` subcommand, which is the same agent. Build the two together: an
// agent from another build may not speak the same protocol.
func runnerCommand() ([]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	agent := filepath.Join(filepath.Dir(self), "gofastapi-runner")
	if fi, err := os.Stat(agent); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return []string{agent}, nil
	}
	return []string{self, "runner"}, nil
}
