package embedded

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a redis-server child process.
type Redis struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{}
}

// StartRedis starts binary (redis-server) on a free loopback port with a
// random password and no persistence, and returns once it answers PING.
func StartRedis(ctx context.Context, binary string) (*Redis, error) {
	path, err := exec.LookPath(binary)
	if err != nil {
		return nil, fmt.Errorf("%s not found: install it (apt-get install redis-server) or pass --redis-url: %w", binary, err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	pass := randomHex(24)
	cmd := exec.Command(path, "-")
	// The config goes in on stdin so the password is not on the command line.
	cmd.Stdin = strings.NewReader(strings.Join([]string{
		"bind 127.0.0.1", "port " + strconv.Itoa(port), "protected-mode yes",
		"requirepass " + pass, `save ""`, "appendonly no", "daemonize no", "loglevel warning",
	}, "\n") + "\n")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	r := &Redis{cmd: cmd, done: make(chan struct{})}
	r.url = (&url.URL{Scheme: "redis", User: url.UserPassword("default", pass), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}).String()
	lastLine := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stderr)
		last := ""
		for s.Scan() {
			last = s.Text()
		}
		lastLine <- last
		cmd.Wait()
		close(r.done)
	}()
	if err := waitPing(ctx, r.url, r.done); err != nil {
		r.Stop()
		select {
		case l := <-lastLine:
			return nil, fmt.Errorf("redis-server did not start: %w: %s", err, l)
		default:
			return nil, fmt.Errorf("redis-server did not start: %w", err)
		}
	}
	return r, nil
}

// URL is the redis:// URL of the default (admin) user.
func (r *Redis) URL() string { return r.url }

// Stop ends the process.
func (r *Redis) Stop() {
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
	}
}

// waitPing retries PING with a growing backoff until it answers, the
// process exits, or ctx ends.
func waitPing(ctx context.Context, u string, exited <-chan struct{}) error {
	opt, err := redis.ParseURL(u)
	if err != nil {
		return err
	}
	opt.MaxRetries = -1
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	backoff := time.Millisecond
	for {
		if err := c.Ping(ctx).Err(); err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("process exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
			backoff = min(2*backoff, 100*time.Millisecond)
		}
	}
}

// RunnerUser creates (or replaces) a Redis ACL user that can only GET keys
// under bundle:, compiled: and deps: (bundles, their compiled modules and
// apps' dependencies) and
// returns a URL for it. Runners run untrusted code next to
// this credential, so it must not allow writes or other keys.
func RunnerUser(ctx context.Context, rdb redis.UniversalClient, adminURL string) (string, error) {
	pass := randomHex(24)
	err := rdb.Do(ctx, "ACL", "SETUSER", "gofastapi-runner", "reset", "on", ">"+pass,
		"resetkeys", "~bundle:*", "~compiled:*", "~deps:*", "resetchannels", "-@all", "+get", "+ping", "+hello", "+auth").Err()
	if err != nil {
		return "", fmt.Errorf("create runner redis user: %w", err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", err
	}
	u.User = url.UserPassword("gofastapi-runner", pass)
	return u.String(), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
