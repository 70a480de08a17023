package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gofastapi/gofastapi/controlplane/ratelimit"
)

// devConfig is every setting of `gofastapi dev`, read once from flags and
// the environment.
type devConfig struct {
	Addr          string
	Domain        string
	Data          string
	MongoURI      string
	RedisURL      string
	Python        string
	Warm          int
	MaxRunners    int
	IdleTimeout   time.Duration
	ReadyTimeout  time.Duration
	MaxBody       int
	MaxConnsPerIP int
	LogLevel      string
	Debug         bool
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
	fs.StringVar(&c.Data, "data", ".gofastapi", "data directory (embedded database, runner work dirs)")
	fs.StringVar(&c.MongoURI, "mongo-uri", os.Getenv("MONGO_URI"), "MongoDB URI of the platform database (default: embedded FerretDB under --data) [MONGO_URI]")
	fs.StringVar(&c.RedisURL, "redis-url", os.Getenv("REDIS_URL"), "Redis URL (default: start redis-server as a child) [REDIS_URL]")
	fs.StringVar(&c.Python, "python", "/usr/bin/python3", "Python interpreter of the runners and the validator")
	fs.IntVar(&c.Warm, "warm", 2, "generic runners kept warm")
	fs.IntVar(&c.MaxRunners, "max-runners", 50, "most runners at once; beyond it apps answer 503")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 5*time.Minute, "an app idle this long loses its runner (scale to zero)")
	fs.DurationVar(&c.ReadyTimeout, "ready-timeout", 10*time.Second, "bound on an app's import and first answer")
	fs.IntVar(&c.MaxBody, "max-body", 10<<20, "largest request body in bytes")
	fs.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", 1024, "most open client connections from one address (0: no cap)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.Debug, "debug-endpoints", false, "serve /debug/pool on the API host (pool size and runner addresses; for benchmarks)")
	fs.StringVar(&c.PoolAddr, "pool-addr", "", "URL of a shared pool manager (gofastapi pool) instead of local runners; token in "+poolTokenEnv)
	rateFlag(fs, &c.SigninRateAddr, "signin-rate-per-address", "30/1m", "most Login, Signup and password change attempts from one client address, N/DURATION (0: no limit)")
	rateFlag(fs, &c.SigninRateUser, "signin-rate-per-user", "10/5m", "most Login, Signup and password change attempts for one username, N/DURATION (0: no limit)")
	if err := fs.Parse(args); err != nil {
		return nil, errUsage
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("dev: unexpected argument %q", fs.Arg(0))
	}
	abs, err := filepath.Abs(c.Data)
	if err != nil {
		return nil, err
	}
	c.Data = abs
	return c, c.Validate()
}

// Validate reports the first bad setting.
func (c *devConfig) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("--addr %q: %w", c.Addr, err)
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
	case c.MaxConnsPerIP < 0:
		return errors.New("--max-conns-per-ip must not be negative")
	}
	return nil
}

// appURL is the public URL of app slug given the gateway's listen address.
func (c *devConfig) appURL(listen net.Addr) func(string) string {
	port := listen.(*net.TCPAddr).Port
	suffix := ""
	if port != 80 {
		suffix = ":" + strconv.Itoa(port)
	}
	return func(slug string) string { return "http://" + slug + "." + c.Domain + suffix }
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
