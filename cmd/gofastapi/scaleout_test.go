package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gofastapi/gofastapi/controlplane/embedded"
	"github.com/gofastapi/gofastapi/gateway/ownerlimit"
	"github.com/gofastapi/gofastapi/pool/kube"
	"github.com/gofastapi/gofastapi/pool/kube/kubetest"
)

// kubeCluster is a real etcd + kube-apiserver with the test node agent
// running this package's gofastapi binary in pods, and a namespace for runners
// holding their Secret.
type kubeCluster struct {
	env *kubetest.Env
	ns  string
}

func startKube(t *testing.T, runnerRedisURL string) *kubeCluster {
	t.Helper()
	dir, err := os.MkdirTemp("", "gofastapi-kube-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	env, err := kubetest.Start(filepath.Join(dir, "cluster"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Stop)
	node, err := kubetest.StartNode(kubetest.NodeConfig{
		Client: env.Client, Name: "test-node", Dir: filepath.Join(dir, "node"),
		Paths: map[string]string{"/usr/local/bin/gofastapi-runner": filepath.Join(filepath.Dir(binary), "gofastapi-runner"),
			"/usr/local/bin/python3": "/usr/bin/python3"},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Stop)
	c := &kubeCluster{env: env, ns: "gofastapi-runners"}
	ctx := context.Background()
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.CoreV1().Secrets(c.ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "gofastapi-runner"},
		StringData: map[string]string{"runner.json": fmt.Sprintf(`{"redis_url": %q}`, runnerRedisURL)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Pods must be gone before the node stops (cleanups run last-in first-out).
	t.Cleanup(func() { c.deleteAllPods(t) })
	return c
}

func (c *kubeCluster) deleteAllPods(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pods := c.env.Client.CoreV1().Pods(c.ns)
	_ = pods.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	for ctx.Err() == nil {
		l, err := pods.List(ctx, metav1.ListOptions{})
		if err == nil && len(l.Items) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond) // polling the API for the node agent's removals
	}
}

// claimedPods lists the runner pods that serve an app, once at least one
// is recorded as such (the pool manager records a claim on its pod in the
// background, after the runner answered).
func (c *kubeCluster) claimedPods(t *testing.T) []corev1.Pod {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		l, err := c.env.Client.CoreV1().Pods(c.ns).List(context.Background(), metav1.ListOptions{LabelSelector: kube.LabelState + "=" + kube.StateClaimed})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Items) > 0 || time.Now().After(deadline) {
			return l.Items
		}
	}
}

// startPoolManager runs `gofastapi pool` and returns its PoolService URL.
func startPoolManager(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"pool", "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = os.Environ()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("gofastapi pool log:\n%s", logs)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("gofastapi pool did not stop on SIGTERM:\n%s", logs)
		}
	})
	ready := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`PoolService at (http://\S+)`)
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			if m := re.FindStringSubmatch(s.Text()); m != nil {
				ready <- m[1]
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case u := <-ready:
		// Ready to serve once it leads (what the Deployment's readiness probe checks).
		deadline := time.Now().Add(2 * time.Minute)
		for {
			resp, err := http.Get(u + "/leader")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return u
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("gofastapi pool never led:\n%s", logs)
			}
			time.Sleep(20 * time.Millisecond) // polling the readiness endpoint
		}
	case <-exited:
		t.Fatalf("gofastapi pool exited:\n%s", logs)
	case <-time.After(2 * time.Minute):
		t.Fatalf("gofastapi pool did not start:\n%s", logs)
	}
	return ""
}

// TestScaleOutOnKube runs two gateways (`gofastapi dev --pool-addr`) that
// share one Redis, one MongoDB and one pool manager (`gofastapi pool
// --backend kube`) whose runners are pods on a real API server: an app
// deployed through one gateway is served by both, from one runner pod
// (one cold start across both), and a redeploy is seen by both.
func TestScaleOutOnKube(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	ctx := context.Background()
	rs, err := embedded.StartRedis(ctx, "redis-server")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Stop)
	ropt, _ := redis.ParseURL(rs.URL())
	rdb := redis.NewClient(ropt)
	defer rdb.Close()
	runnerURL, err := embedded.RunnerUser(ctx, rdb, rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	fe, err := embedded.StartFerret(t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fe.Stop)
	kc := startKube(t, runnerURL)

	t.Setenv(poolTokenEnv, "test-pool-token")
	t.Setenv(runnerControlKeyEnv, "test-runner-control-key")
	poolURL := startPoolManager(t, "--backend", "kube", "--kubeconfig", kc.env.Kubeconfig,
		"--namespace", kc.ns, "--lease-namespace", kc.ns, "--identity", "pool-0",
		"--pod-template", "../../deploy/base/runner/runner-pod.yaml", "--redis-url", rs.URL(), "--warm", "1")

	// One platform key for both: a secret sealed by one is opened by the other.
	shared := []string{"--mongo-uri", fe.URI(), "--redis-url", rs.URL(), "--pool-addr", poolURL,
		"--secret-key-file", filepath.Join(t.TempDir(), "secret.key")}
	home, src := t.TempDir(), t.TempDir()
	a := startPlatform(t, t.TempDir(), home, shared...)
	b := startPlatform(t, t.TempDir(), home, shared...)

	a.mustCLI("signup", "--username", "alice", "--password", "correct horse")
	a.mustCLI("deploy", "--name", "shared", writeFile(t, src, "main.py", fmt.Sprintf(helloApp, "v1")))
	for _, p := range []*platform{a, b, a, b} {
		if code, body := p.get("shared", "/"); code != 200 || !strings.Contains(body, `"v1"`) {
			t.Fatalf("gateway :%s: GET shared = %d %s, want v1\nits log:\n%s", p.port, code, body, p.logs)
		}
	}
	pods := kc.claimedPods(t)
	if len(pods) != 1 {
		t.Errorf("%d runner pods serve the app after requests through both gateways, want 1 (one cold start)", len(pods))
	}
	// Its control token derives from the key only the pool manager holds,
	// not from the pool token the gateways hold too.
	for _, pod := range pods {
		if got, want := pod.Annotations[kube.AnnControlKey], kube.KeyID([]byte("test-runner-control-key")); got != want {
			t.Errorf("pod %s names control key %q, want %q (%s's)", pod.Name, got, want, runnerControlKeyEnv)
		}
	}
	// The pool manager's own /metrics, for operators: one claimed runner,
	// one cold start that succeeded. The start is counted once recorded,
	// which is when the gateway's next Touch brings its first byte.
	mfs := scrape(t, strings.TrimPrefix(poolURL, "http://"))
	if got := mfs["gofastapi_pool_runners_claimed"].GetMetric()[0].GetGauge().GetValue(); got != 1 {
		t.Errorf("pool manager /metrics: runners_claimed = %v, want 1", got)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		got := value(mfs, "gofastapi_pool_cold_starts_total", "result", "ok")
		if got == 1 {
			break
		}
		if got > 1 || time.Now().After(deadline) {
			t.Errorf("pool manager /metrics: cold_starts_total{result=ok} = %v, want 1", got)
			break
		}
		mfs = scrape(t, strings.TrimPrefix(poolURL, "http://"))
	}

	// A redeploy through either gateway reaches both.
	b.mustCLI("login", "--username", "alice", "--password", "correct horse")
	b.mustCLI("deploy", "--name", "shared", writeFile(t, src, "main.py", fmt.Sprintf(helloApp, "v2")))
	for _, p := range []*platform{a, b} {
		deadline := time.Now().Add(time.Minute)
		for {
			code, body := p.get("shared", "/")
			if code == 200 && strings.Contains(body, `"v2"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("gateway :%s still answers %d %s after the redeploy, want v2", p.port, code, body)
			}
			time.Sleep(50 * time.Millisecond) // the route change travels through Redis pub/sub
		}
	}

	// An owner's request limit holds across the gateways: together they
	// let through the limit, not each of them the whole of it.
	bob, user := a.signup(t, "bob", "bob password")
	b.mustCLI("admin", "limits", "--requests", "6", "bob") // alice's CLI session is with b now
	a.deploy(t, bob, "bobs", fmt.Sprintf(helloApp, "bob's"))
	for i := range 6 {
		if code, body := a.get("bobs", "/"); code != 200 {
			t.Fatalf("gateway :%s: request %d of bob's 6 a minute: %d %s", a.port, i+1, code, body)
		}
	}
	if code, body := a.get("bobs", "/"); code != http.StatusTooManyRequests {
		t.Fatalf("gateway :%s: bob's 7th request: %d %s, want 429", a.port, code, body)
	}
	// The first gateway spends its 6 from bob's shared bucket at its next
	// sync; the second, which has not served bob, starts from that.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left, err := rdb.HGet(ctx, ownerlimit.Key(user.GetId()), "tokens").Float64()
		if err == nil && left < 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's shared bucket holds %v (%v) after his 6 requests, want less than 1", left, err)
		}
	}
	code, body := b.get("bobs", "/")
	if code != http.StatusTooManyRequests || !strings.Contains(body, "plan allows (6 a minute)") {
		t.Fatalf("gateway :%s: bob's 8th request, the first there: %d %s, want 429 (the limit is shared)", b.port, code, body)
	}
}

// uidApp answers with the user id its Python runs as.
const uidApp = `import os
from fastapi import FastAPI
app = FastAPI()
@app.get("/")
def uid():
    return {"uid": os.getuid()}
`

// TestPoolManagerLocal runs a gateway on a pool manager with local runners
// (`gofastapi pool --backend local`): the app is served, and as root its
// Python runs as a user of its own, as under `gofastapi dev`, not as root.
func TestPoolManagerLocal(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	rs, err := embedded.StartRedis(context.Background(), "redis-server")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Stop)
	t.Setenv(poolTokenEnv, "test-pool-token")
	poolURL := startPoolManager(t, "--backend", "local", "--redis-url", rs.URL(), "--data", t.TempDir(), "--warm", "1")
	p := startPlatform(t, t.TempDir(), t.TempDir(), "--redis-url", rs.URL(), "--pool-addr", poolURL)
	tok, _ := p.signup(t, "ursula", "ursula's password")
	p.deploy(t, tok, "who", uidApp)
	code, body := p.get("who", "/")
	var got struct{ UID int }
	if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil {
		t.Fatalf("GET who/ = %d %s", code, body)
	}
	if os.Geteuid() == 0 && got.UID == 0 {
		t.Errorf("the app's Python runs as root under a root pool manager; want a user of its own (--runner-uids auto)")
	}
}
