package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/gofastapi/gofastapi/controlplane/apps"
	"github.com/gofastapi/gofastapi/controlplane/ratelimit"
	"github.com/gofastapi/gofastapi/pool/local"
	"github.com/gofastapi/gofastapi/runner"
)

// devConfig is every setting of `gofastapi dev`, read once from flags and
// the environment.
type devConfig struct {
	Addr   string
	Domain string
	// DNSResolver is the DNS server (host:port) that checks custom
	// domains' CNAME records; empty means the system's resolver.
	DNSResolver string
	// DomainRecheck is how often every custom domain's CNAME record is
	// looked up again (apps.RecheckDomains); 0: never.
	DomainRecheck time.Duration
	// AssistantRate bounds each user's chats with the AI assistant;
	// AssistantAnthropicURL is the root of Anthropic's API;
	// AssistantPrivateEndpoints lets users' OpenAI-compatible endpoints be
	// on private networks and plain http.
	AssistantRate             ratelimit.Rate
	AssistantAnthropicURL     string
	AssistantPrivateEndpoints bool
	// PublicURL is the apex as users reach it, SCHEME://DOMAIN[:PORT]
	// (behind a TLS terminator or a load balancer, say): app URLs are
	// SCHEME://NAME.DOMAIN[:PORT]. Empty: http and the gateway's port.
	PublicURL string
	Data      string
	MongoURI  string
	RedisURL  string
	Python    string
	// WarmOnDeploy has a deploy start a runner for the new version (the
	// warm stage), which also finds an app that does not start.
	WarmOnDeploy bool
	// PackageIndex is the package index (its "simple" API URL) that apps'
	// dependencies are installed from; empty: apps cannot declare any.
	PackageIndex string
	// SecretKeyFile holds the platform key that seals secrets at rest
	// (see controlplane/secretbox); empty means DATA/secret.key, made on
	// first run.
	SecretKeyFile string
	Warm          int
	MaxRunners    int
	IdleTimeout   time.Duration
	ReadyTimeout  time.Duration
	MaxBody       int
	MaxConnsPerIP int
	// DBFrontAddr is where apps reach the platform database (the wire
	// front); DBQueryTimeout and DBMaxConnsPerUser are its limits.
	DBFrontAddr       string
	DBQueryTimeout    time.Duration
	DBMaxConnsPerUser int
	// DBMongoUsers keeps a MongoDB user per database account in the
	// --mongo-uri server (package mongousers) and has the front sign every
	// app connection in as its owner.
	DBMongoUsers bool
	// RunnerUIDs are the users runners' Python processes run as, one per
	// runner in turn; zero Count when the platform is not root.
	RunnerUIDs local.UIDRange
	// AppMemory bounds each app's data memory (local.Config.AppMemory:
	// negative is no limit).
	AppMemory int64
	LogLevel  string
	Debug     bool
	// LogFormat is json (structured lines) or text.
	LogFormat string
	// MetricsAddr is the internal listener of /metrics, /healthz and
	// /readyz ("" for none); AppMetrics turns the gateway's per-app
	// recording on; MetricsFlush is how often it is flushed, HealthProbe
	// how often each running app's GET /health is probed.
	MetricsAddr  string
	AppMetrics   bool
	MetricsFlush time.Duration
	HealthProbe  time.Duration
	// PoolAddr, if set, is a shared pool manager's PoolService (`gofastapi
	// pool`) to claim runners from instead of a pool of this process's own.
	PoolAddr string
	// SigninRateAddr and SigninRateUser bound Login, Signup and password
	// change attempts per client address and per username.
	SigninRateAddr ratelimit.Rate
	SigninRateUser ratelimit.Rate
}

func parseDevConfig(args []string, stderr io.Writer) (*devConfig, error) {
	c := &devConfig{}
	fs := flag.NewFlagSet("gofastapi dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8080", "listen address of the gateway (API, web editor and apps)")
	fs.StringVar(&c.Domain, "domain", "localhost", "apex domain: the API at DOMAIN, app NAME at NAME.DOMAIN")
	fs.StringVar(&c.DNSResolver, "dns-resolver", "", "DNS server, HOST:PORT, that checks custom domains' CNAME records (default: the system's resolver)")
	fs.DurationVar(&c.DomainRecheck, "domain-recheck", time.Hour, "how often custom domains' CNAME records are checked again; one that 3 checks in a row find gone or pointing elsewhere is removed (0: never)")
	fs.StringVar(&c.PublicURL, "public-url", os.Getenv("PUBLIC_URL"), "the apex as users reach it, http(s)://DOMAIN[:PORT], when that is not the gateway's own address (behind TLS or a load balancer): app URLs become SCHEME://NAME.DOMAIN[:PORT] (default: http and --addr's port) [PUBLIC_URL]")
	fs.StringVar(&c.Data, "data", ".gofastapi", "data directory (embedded database, runner work dirs)")
	fs.StringVar(&c.MongoURI, "mongo-uri", os.Getenv("MONGO_URI"), "MongoDB URI of the platform database (default: embedded FerretDB under --data) [MONGO_URI]")
	fs.StringVar(&c.RedisURL, "redis-url", os.Getenv("REDIS_URL"), "Redis URL (default: start redis-server as a child) [REDIS_URL]")
	fs.StringVar(&c.Python, "python", "/usr/bin/python3", "Python interpreter of the runners and the validator")
	fs.BoolVar(&c.WarmOnDeploy, "warm-on-deploy", true, "a deploy starts a runner for the new version before it reports live, so the first request is answered at once, and a version that fails to start is not left serving (the version before serves again)")
	fs.StringVar(&c.PackageIndex, "package-index", os.Getenv("PACKAGE_INDEX"), "URL of the package index (its simple API) that the packages of apps' requirements.txt are installed from; empty: apps cannot declare dependencies [PACKAGE_INDEX]")
	fs.StringVar(&c.SecretKeyFile, "secret-key-file", os.Getenv("GOFASTAPI_SECRET_KEY_FILE"), "file of the platform key that encrypts secrets at rest; first line is the current key, older keys below (default: DATA/secret.key, made on first run) [GOFASTAPI_SECRET_KEY_FILE]")
	fs.IntVar(&c.Warm, "warm", 2, "generic runners kept warm")
	fs.IntVar(&c.MaxRunners, "max-runners", 50, "most runners at once; beyond it apps answer 503")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 5*time.Minute, "an app idle this long loses its runner (scale to zero)")
	fs.DurationVar(&c.ReadyTimeout, "ready-timeout", 10*time.Second, "bound on an app's import and first answer")
	fs.IntVar(&c.MaxBody, "max-body", 10<<20, "largest request body in bytes")
	fs.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", 1024, "most open client connections from one address (0: no cap)")
	fs.StringVar(&c.DBFrontAddr, "db-front-addr", "127.0.0.1:0", "loopback address of the platform database front apps connect to (PLATFORM_MONGO_URI)")
	fs.DurationVar(&c.DBQueryTimeout, "db-query-timeout", 5*time.Second, "longest a platform database command may run before it is stopped")
	fs.IntVar(&c.DBMaxConnsPerUser, "db-max-conns-per-user", 50, "most open platform database connections per user")
	mongoUsers, err := envBool("GOFASTAPI_DB_MONGO_USERS")
	if err != nil {
		return nil, err
	}
	fs.BoolVar(&c.DBMongoUsers, "db-mongo-users", mongoUsers, "with --mongo-uri: keep a MongoDB user per platform database user (readWrite on their databases only; created, updated and dropped by the platform) and sign every app connection in to MongoDB as its owner, so MongoDB's roles check each command behind the front; the URI's user must be allowed to manage users (userAdminAnyDatabase or root) [GOFASTAPI_DB_MONGO_USERS]")
	readRunnerFlags := localRunnerFlags(fs)
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "json", "json (one JSON object per line) or text")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "127.0.0.1:9464", "internal listener of the operators' /metrics, /healthz and /readyz; keep it off the public network (empty: none)")
	fs.BoolVar(&c.AppMetrics, "app-metrics", true, "record per-app requests, errors and health in the gateway (gofastapi stats, errors)")
	fs.DurationVar(&c.MetricsFlush, "metrics-flush", 10*time.Second, "how often the gateway writes per-app metrics to the database")
	fs.DurationVar(&c.HealthProbe, "health-probe-interval", time.Minute, "how often each running app's GET /health is requested")
	fs.BoolVar(&c.Debug, "debug-endpoints", false, "serve /debug/pool on the API host (pool size and runner addresses; for benchmarks)")
	fs.StringVar(&c.PoolAddr, "pool-addr", "", "URL of a shared pool manager (gofastapi pool) instead of local runners; token in "+poolTokenEnv)
	rateFlag(fs, &c.AssistantRate, "assistant-rate", "20/1m", "most messages to the AI assistant per user, N/DURATION (0: no limit)")
	fs.StringVar(&c.AssistantAnthropicURL, "assistant-anthropic-url", "https://api.anthropic.com", "root of Anthropic's API, for the AI assistant")
	fs.BoolVar(&c.AssistantPrivateEndpoints, "assistant-private-endpoints", false, "let users' OpenAI-compatible endpoints be on private networks or loopback, over plain http (a self-hosted model; tests); off, the platform calls only public https endpoints")
	rateFlag(fs, &c.SigninRateAddr, "signin-rate-per-address", "30/1m", "most Login, Signup and password change attempts from one client address, N/DURATION (0: no limit)")
	rateFlag(fs, &c.SigninRateUser, "signin-rate-per-user", "10/5m", "most Login, Signup and password change attempts for one username, N/DURATION (0: no limit)")
	if err := fs.Parse(args); err != nil {
		return nil, errUsage
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("dev: unexpected argument %q", fs.Arg(0))
	}
	// /proc/PID/cmdline is readable by every local user, apps included.
	fs.Visit(func(f *flag.Flag) {
		if (f.Name == "redis-url" || f.Name == "mongo-uri") && strings.Contains(f.Value.String(), "@") {
			fmt.Fprintf(stderr, "gofastapi dev: warning: --%s carries a password on the command line, which every local process can read; set it in %s instead\n",
				f.Name, map[string]string{"redis-url": "REDIS_URL", "mongo-uri": "MONGO_URI"}[f.Name])
		}
	})
	if c.RunnerUIDs, c.AppMemory, err = readRunnerFlags(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(c.Data)
	if err != nil {
		return nil, err
	}
	c.Data = abs
	if c.SecretKeyFile == "" {
		c.SecretKeyFile = filepath.Join(c.Data, "secret.key")
	}
	return c, c.Validate()
}

// Validate reports the first bad setting.
func (c *devConfig) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("--addr %q: %w", c.Addr, err)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return fmt.Errorf("--metrics-addr %q: %w", c.MetricsAddr, err)
		}
	}
	switch {
	case c.Domain == "":
		return errors.New("--domain is empty")
	case c.Warm < 0:
		return errors.New("--warm must not be negative")
	case c.MaxRunners < 1 || c.MaxRunners < c.Warm:
		return errors.New("--max-runners must be at least 1 and at least --warm")
	case c.IdleTimeout <= 0:
		return errors.New("--idle-timeout must be positive")
	case c.ReadyTimeout <= 0:
		return errors.New("--ready-timeout must be positive")
	case c.MaxBody <= 0:
		return errors.New("--max-body must be positive")
	case c.DBQueryTimeout <= 0:
		return errors.New("--db-query-timeout must be positive")
	case c.DBMaxConnsPerUser < 1:
		return errors.New("--db-max-conns-per-user must be at least 1")
	case c.MaxConnsPerIP < 0:
		return errors.New("--max-conns-per-ip must not be negative")
	case c.DBMongoUsers && c.MongoURI == "":
		return errors.New("--db-mongo-users needs --mongo-uri (MONGO_URI): it keeps users in an external MongoDB; the embedded store has no users of its own, and the database front alone isolates users there")
	case c.MetricsFlush <= 0:
		return errors.New("--metrics-flush must be positive")
	case c.HealthProbe <= 0:
		return errors.New("--health-probe-interval must be positive")
	case c.DomainRecheck < 0:
		return errors.New("--domain-recheck must not be negative (0: never)")
	}
	if c.PackageIndex != "" {
		if u, err := url.Parse(c.PackageIndex); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--package-index %q: want the http(s) URL of a package index's simple API, such as https://HOST/simple/", c.PackageIndex)
		}
	}
	if c.DNSResolver != "" {
		if _, _, err := net.SplitHostPort(c.DNSResolver); err != nil {
			return fmt.Errorf("--dns-resolver %q: want HOST:PORT of a DNS server: %w", c.DNSResolver, err)
		}
	}
	if err := c.checkPublicURL(); err != nil {
		return err
	}
	if c.DBMongoUsers {
		cs, err := connstring.ParseAndValidate(c.MongoURI)
		if err != nil {
			return fmt.Errorf("--mongo-uri: %w", err)
		}
		if cs.Username == "" {
			return errors.New("--db-mongo-users needs --mongo-uri with the credentials of a MongoDB user allowed to manage users (userAdminAnyDatabase or root)")
		}
	}
	return nil
}

// envBool reads a boolean environment variable; unset or empty is false,
// and a value strconv.ParseBool does not take is an error.
func envBool(name string) (bool, error) {
	v := os.Getenv(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want true or false", name, v)
	}
	return b, nil
}

// checkPublicURL reports what is wrong with a --public-url that is set.
func (c *devConfig) checkPublicURL() error {
	if c.PublicURL == "" {
		return nil
	}
	u, err := url.Parse(c.PublicURL)
	switch {
	case err != nil:
		return fmt.Errorf("--public-url %q: %w", c.PublicURL, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("--public-url %q: want http://%s or https://%s, with a port if not the scheme's own", c.PublicURL, c.Domain, c.Domain)
	case !strings.EqualFold(u.Hostname(), c.Domain):
		return fmt.Errorf("--public-url %q: its host must be --domain %q, under which the gateway serves the apps", c.PublicURL, c.Domain)
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("--public-url %q: want only a scheme, the domain and a port, as in https://%s", c.PublicURL, c.Domain)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("--public-url %q: port %q is not 1-65535", c.PublicURL, p)
		}
	}
	return nil
}

// publicBase is the scheme and the port suffix (":N", or "" for the
// scheme's own) users reach the gateway at: --public-url's, else http and
// the gateway's listen port.
func (c *devConfig) publicBase(listen net.Addr) (scheme, port string) {
	if c.PublicURL == "" {
		return "http", portSuffix(listen)
	}
	u, _ := url.Parse(c.PublicURL) // checked by Validate
	if p := u.Port(); p != "" && !(u.Scheme == "http" && p == "80") && !(u.Scheme == "https" && p == "443") {
		port = ":" + p
	}
	return u.Scheme, port
}

// appURL is the public URL of app slug given the gateway's listen address.
func (c *devConfig) appURL(listen net.Addr) func(string) string {
	scheme, suffix := c.publicBase(listen)
	return func(slug string) string { return scheme + "://" + slug + "." + c.Domain + suffix }
}

// rateFlag defines a flag holding a ratelimit.Rate; a bad value fails the
// parse.
func rateFlag(fs *flag.FlagSet, r *ratelimit.Rate, name, def, usage string) {
	*r, _ = ratelimit.ParseRate(def)
	fs.Func(name, usage+" (default "+def+")", func(s string) error {
		v, err := ratelimit.ParseRate(s)
		if err != nil {
			return err
		}
		*r = v
		return nil
	})
}

// defaultRunnerUIDs is the range --runner-uids=auto takes as root: ids no
// distribution gives to users or to container user namespaces.
const defaultRunnerUIDs = "1900000000:65536"

// warnSharedUser says, when runners' Python runs as this process's own
// user, what apps are not kept from (see sharedUserRisks); and, when they
// have users of their own but the machine has no control groups to put
// each app's processes in, that those are bounded each by itself.
func warnSharedUser(log *slog.Logger, uids local.UIDRange) {
	if uids.Count == 0 {
		log.Warn(sharedUserRisks(runner.LandlockABI(), runner.CanForbidUnixSockets(), os.Geteuid() == 0))
		return
	}
	if err := runner.CanGroupApps(); err != nil {
		log.Warn("each process of an app has its own memory limit, not one for all it starts: an app that forks can take more (" +
			err.Error() + "); on Kubernetes the pod's limits hold all of them")
	}
}

// sharedUserRisks says what apps whose Python runs as the platform's own
// user can do to it and to each other, given the kernel's Landlock ABI
// and whether runners can forbid themselves Unix sockets (the two ways
// runners confine themselves), and whether that user is root (apps then
// run as root, without capabilities).
func sharedUserRisks(landlockABI int, noUnixSockets, root bool) string {
	var b strings.Builder
	b.WriteString("runners' Python runs as this process's user (--runner-uids off, or not root): apps are bounded each process " +
		"by itself, not as a user or control group of their own, so one app can start processes or fill the runners' disk " +
		"that the others need")
	switch {
	case landlockABI < 1:
		b.WriteString("; since this kernel has no Landlock, they can also read and change what this user can, the data directory, " +
			"its key and its stores included, read this process's environment through /proc, and signal it")
	case landlockABI < 4:
		b.WriteString("; since this kernel's Landlock is older than ABI 4 (Linux 6.7), they can also listen on TCP ports of their " +
			"own and signal this process")
	case landlockABI < 6:
		b.WriteString("; since this kernel's Landlock is older than ABI 6 (Linux 6.12), they can also signal this process")
	}
	if !noUnixSockets {
		b.WriteString("; on this architecture runners cannot forbid themselves Unix sockets, so apps can also open each other's " +
			"and this process's, its store's and the runners' zygote's, which forks processes outside any confinement")
	}
	if root {
		b.WriteString("; as root (without capabilities), they also read root's own files in the system's directories, /etc/shadow say; " +
			"give runners users of their own (--runner-uids auto)")
	} else {
		b.WriteString("; run as root")
	}
	b.WriteString(", or on Kubernetes, to keep apps apart from the platform and each other")
	return b.String()
}

// localRunnerFlags declares the flags of local runners that gofastapi dev
// and gofastapi pool share, and returns what reads them once parsed.
func localRunnerFlags(fs *flag.FlagSet) func() (local.UIDRange, int64, error) {
	runnerUIDs := fs.String("runner-uids", "auto", "BASE:COUNT: user ids (and group ids) runners' Python runs as, one per runner in turn, when this process runs as root; auto is "+defaultRunnerUIDs+" as root and off otherwise; off keeps Python as this process's user")
	appMemory := fs.String("app-memory", "2G", "memory each app may have, such as 512M or 2G: each of its processes' data, past which an allocation fails with MemoryError in the app, and, as root where the machine has cgroup v1, all its processes and files together (0: no limit)")
	return func() (local.UIDRange, int64, error) {
		uids, err := parseUIDRange(*runnerUIDs)
		if err != nil {
			return local.UIDRange{}, 0, err
		}
		mem, err := parseAppMemory(*appMemory)
		return uids, mem, err
	}
}

// parseAppMemory parses --app-memory into local.Config.AppMemory.
func parseAppMemory(s string) (int64, error) {
	n, err := parseSize(s)
	switch {
	case err != nil:
		return 0, fmt.Errorf("--app-memory: %w", err)
	case n == 0:
		return -1, nil // no limit
	case n < 64<<20:
		return 0, fmt.Errorf("--app-memory %s: an app needs 64M or more (its Python alone takes about 50M)", s)
	}
	return n, nil
}

// parseUIDRange parses --runner-uids.
func parseUIDRange(s string) (local.UIDRange, error) {
	switch s {
	case "off":
		return local.UIDRange{}, nil
	case "auto":
		if os.Geteuid() != 0 {
			return local.UIDRange{}, nil
		}
		s = defaultRunnerUIDs
	}
	b, n, ok := strings.Cut(s, ":")
	base, err1 := strconv.ParseUint(b, 10, 32)
	count, err2 := strconv.ParseUint(n, 10, 32)
	if !ok || err1 != nil || err2 != nil || base == 0 || count == 0 || base+count > 1<<32-1 {
		return local.UIDRange{}, fmt.Errorf("--runner-uids %q: want BASE:COUNT (positive, below 2^32-1), auto or off", s)
	}
	if os.Geteuid() != 0 {
		return local.UIDRange{}, fmt.Errorf("--runner-uids %q needs gofastapi dev to run as root", s)
	}
	return local.UIDRange{Base: uint32(base), Count: uint32(count)}, nil
}

// resolver is the resolver that checks custom domains: --dns-resolver's
// server, else nil (the system's).
func (c *devConfig) resolver() apps.CNAMEResolver {
	if c.DNSResolver == "" {
		return nil
	}
	addr := c.DNSResolver
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}
