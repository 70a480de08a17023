package launch_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gofastapi/gofastapi/proto/bundle"
)

const (
	redisAdminPass  = "admin-secret"
	redisRunnerUser = "runner"
	redisRunnerPass = "runner-secret"
)

// testRedis is a real redis-server on a free loopback port.
type testRedis struct {
	// admin may write; runnerURL is a read-only user, as in production.
	admin     *redis.Client
	runnerURL string
}

// startRedis starts /usr/bin/redis-server without persistence and stops it
// when the test ends.
func startRedis(t testing.TB) *testRedis {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command("/usr/bin/redis-server",
		"--bind", "127.0.0.1", "--port", fmt.Sprint(port),
		"--save", "", "--appendonly", "no",
		"--requirepass", redisAdminPass, "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	admin := redis.NewClient(&redis.Options{Addr: addr, Password: redisAdminPass, DisableIdentity: true})
	t.Cleanup(func() { admin.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for backoff := time.Millisecond; ; backoff = min(2*backoff, 50*time.Millisecond) {
		err := admin.Ping(ctx).Err()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("redis-server did not answer PING: %v", err)
		case <-time.After(backoff):
		}
	}
	// The runner's user may read bundles and nothing else: the agent needs
	// nothing more (its warm-up reads a bundle key too).
	err := admin.Do(ctx, "ACL", "SETUSER", redisRunnerUser, "reset", "on", ">"+redisRunnerPass,
		"~bundle:*", "~compiled:*", "+get").Err()
	if err != nil {
		t.Fatalf("create read-only user: %v", err)
	}
	return &testRedis{
		admin:     admin,
		runnerURL: fmt.Sprintf("redis://%s:%s@%s/0", redisRunnerUser, redisRunnerPass, addr),
	}
}

// putBundle stores files as a bundle and returns its version.
func (r *testRedis) putBundle(t testing.TB, files []bundle.File) string {
	t.Helper()
	version := bundle.Hash(files)
	r.putBundleAs(t, version, files)
	return version
}

// putBundleAs stores files under version whether or not it is their hash.
func (r *testRedis) putBundleAs(t testing.TB, version string, files []bundle.File) {
	t.Helper()
	r.put(t, bundle.Key(version), files)
}

// putCompiled stores files as the compiled modules of bundle version and
// returns their hash, as a route carries it.
func (r *testRedis) putCompiled(t testing.TB, version string, files []bundle.File) string {
	t.Helper()
	r.put(t, bundle.CompiledKey(version), files)
	return bundle.Hash(files)
}

// put stores files, encoded as a bundle, under key.
func (r *testRedis) put(t testing.TB, key string, files []bundle.File) {
	t.Helper()
	data, err := bundle.Encode(files)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.admin.Set(context.Background(), key, data, 0).Err(); err != nil {
		t.Fatalf("store %s: %v", key, err)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
