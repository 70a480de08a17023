package kube_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gofastapi/gofastapi/pool"
	"github.com/gofastapi/gofastapi/pool/kube"
	"github.com/gofastapi/gofastapi/pool/kube/kubetest"
	"github.com/gofastapi/gofastapi/pool/pooltest"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
	"github.com/gofastapi/gofastapi/runner"
)

var (
	env  *kubetest.Env
	node *kubetest.Node
)

// TestMain makes the test binary the runner agent for the test node's pods
// (`<test binary> runner ...`), and otherwise starts etcd, kube-apiserver
// and the test node once for the package's tests.
func TestMain(m *testing.M) {
	if pooltest.RunnerMain(func(ctx context.Context, args []string) error {
		return runner.Main(ctx, args, os.Stdin, os.Stdout)
	}) {
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "stubrunner" {
		stubRunnerMain(os.Args[2:])
		return
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gofastapi-kubetest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	env, err = kubetest.Start(filepath.Join(dir, "cluster"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Stop()
	node, err = kubetest.StartNode(kubetest.NodeConfig{
		Client: env.Client, Name: "test-node", Dir: filepath.Join(dir, "node"),
		// The runner image's files, on this machine.
		Paths: map[string]string{"/usr/local/bin/gofastapi-runner": os.Args[0], "/usr/local/bin/gofastapi": os.Args[0],
			"/usr/local/bin/python3": "/usr/bin/python3"},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer node.Stop()
	return m.Run()
}

var nsCount atomic.Int32

// controlKey is the test pools' key for their pods' control tokens.
var controlKey = []byte("test control key")

// cluster is one test's namespace with the runners' Secret.
type cluster struct {
	ns        string
	template  *corev1.Pod
	redis     *redis.Client
	runnerURL string
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	rdb, runnerURL := pooltest.StartRedis(t)
	ns := fmt.Sprintf("runners-%d", nsCount.Add(1))
	ctx := context.Background()
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "gofastapi-runner"},
		StringData: map[string]string{"runner.json": fmt.Sprintf(`{"redis_url": %q}`, runnerURL)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tmpl, err := kube.LoadTemplate("../../deploy/base/runner/runner-pod.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{ns: ns, template: tmpl, redis: rdb, runnerURL: runnerURL}
	t.Cleanup(func() { c.waitNoPods(t) })
	return c
}

func logger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func (c *cluster) backend(t *testing.T) *kube.Backend {
	t.Helper()
	return c.backendKey(t, controlKey)
}

// backendKey is a backend whose pods' control tokens derive from key.
func (c *cluster) backendKey(t *testing.T, key []byte) *kube.Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pooltest.WaitLimit)
	defer cancel()
	b, err := kube.New(ctx, kube.Config{Client: env.Client, Namespace: c.ns, Pool: "runners", Template: c.template, ControlKey: key, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// startPod starts a warm pod with c's backend. The context it returns
// ends at pooltest.WaitLimit.
func (c *cluster) startPod(t *testing.T) (context.Context, *kube.Instance) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pooltest.WaitLimit)
	t.Cleanup(cancel)
	inst, err := c.backend(t).Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, inst.(*kube.Instance)
}

// podAt finds the pod whose address addr has.
func (c *cluster) podAt(t *testing.T, addr string) *corev1.Pod {
	t.Helper()
	host, _, _ := net.SplitHostPort(addr)
	pods, err := env.Client.CoreV1().Pods(c.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range pods.Items {
		if pods.Items[i].Status.PodIP == host {
			return &pods.Items[i]
		}
	}
	t.Fatalf("no pod has address %s", host)
	return nil
}

// waitNoPods deletes what a test left and waits until the pods are gone, so
// that no runner of one test outlives it.
func (c *cluster) waitNoPods(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), pooltest.WaitLimit)
	defer cancel()
	pods := env.Client.CoreV1().Pods(c.ns)
	_ = pods.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	for {
		l, err := pods.List(ctx, metav1.ListOptions{})
		if err == nil && len(l.Items) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Errorf("pods left after the test: %v", err)
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestConformance(t *testing.T) {
	c := newCluster(t)
	pooltest.Run(t, pooltest.Harness{
		Redis:      c.redis,
		NewBackend: func(t *testing.T) pool.Backend { return c.backend(t) },
		Detach:     func(b pool.Backend) { b.(*kube.Backend).Detach() },
		Adopts:     true,
		Crash: func(t *testing.T, r pool.RunnerInfo) {
			pod := c.podAt(t, r.Addr)
			if err := node.Kill(pod.Namespace, pod.Name); err != nil {
				t.Fatal(err)
			}
		},
	})
}

// TestClaimRecordedOnPod checks the labels and annotations a new leader
// rebuilds its state from.
func TestClaimRecordedOnPod(t *testing.T) {
	c := newCluster(t)
	p, _ := pooltest.NewPool(t, c.backend(t), pooltest.Options{Warm: 1, Max: 2})
	a := pooltest.Deploy(t, c.redis, "labelled", "")
	r := pooltest.Claim(t, p, a)
	pod := c.podAt(t, r.Addr())
	_, port, _ := net.SplitHostPort(r.Addr())
	deadline := time.Now().Add(pooltest.WaitLimit)
	for pod.Annotations[kube.AnnAppPort] == "" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // the port is recorded after Specialize answered
		pod = c.podAt(t, r.Addr())
	}
	want := map[string]string{kube.LabelPool: "runners", kube.LabelState: kube.StateClaimed, kube.LabelApp: "labelled"}
	for k, v := range want {
		if pod.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, pod.Labels[k], v)
		}
	}
	wantAnn := map[string]string{kube.AnnAppID: "labelled", kube.AnnVersion: a.Version, kube.AnnAppPort: port}
	for k, v := range wantAnn {
		if pod.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, pod.Annotations[k], v)
		}
	}
	name := pod.Name
	r.Release()
	<-r.Done()
	// Released pods are deleted, never reused.
	for {
		_, err := env.Client.CoreV1().Pods(c.ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("released pod %s still exists", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestControlToken checks that a runner pod takes control calls only with
// the token its pool derives for it, and that the pod holds only the
// token's hash.
func TestControlToken(t *testing.T) {
	c := newCluster(t)
	ctx, inst := c.startPod(t)
	defer inst.Stop(time.Second)
	pod, err := env.Client.CoreV1().Pods(c.ns).Get(ctx, inst.Name(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nonce := pod.Annotations[kube.AnnControlNonce]
	if nonce == "" {
		t.Fatalf("pod %s has no %s annotation", pod.Name, kube.AnnControlNonce)
	}
	token := kube.ControlToken(controlKey, nonce)
	sum := sha256.Sum256([]byte(token))
	spec, _ := json.Marshal(pod)
	if !strings.Contains(string(spec), "--control-token-sha256="+hex.EncodeToString(sum[:])) {
		t.Errorf("pod %s's arguments %q lack the token's hash", pod.Name, pod.Spec.Containers[0].Args)
	}
	if strings.Contains(string(spec), token) {
		t.Errorf("pod %s holds its control token", pod.Name)
	}

	a := pooltest.Deploy(t, c.redis, "guarded", "")
	port, err := kube.ControlPort(c.template)
	if err != nil {
		t.Fatal(err)
	}
	control := gofastapiv1connect.NewRunnerServiceClient(http.DefaultClient, "http://"+net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(port)))
	for name, auth := range map[string]string{
		"no token":                   "",
		"another key's token":        "Bearer " + kube.ControlToken([]byte("another key"), nonce),
		"another pod's token":        "Bearer " + kube.ControlToken(controlKey, nonce+"x"),
		"the hash in the pod's spec": "Bearer " + hex.EncodeToString(sum[:]),
		"the token without Bearer":   token,
	} {
		call := connect.NewRequest(a.Request())
		if auth != "" {
			call.Header().Set("Authorization", auth)
		}
		if _, err := control.Specialize(ctx, call); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("Specialize with %s: %v, want Unauthenticated", name, err)
		}
	}
	// The pool's own call, with the token, loads the app.
	if _, err := inst.Specialize(ctx, a.Request()); err != nil {
		t.Fatalf("the pool's Specialize: %v", err)
	}
	pooltest.Get(t, inst.AppAddr(), "guarded")
}

// TestRotatedKeyDropsWarmPods checks that a new leader whose key differs
// (the control key rotated) deletes the warm pods it could not specialize,
// while one with the same key adopts them; and that a leader with a key
// deletes a warm pod made without one, whose control API takes anyone's
// call, while one without a key adopts it.
func TestRotatedKeyDropsWarmPods(t *testing.T) {
	c := newCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), pooltest.WaitLimit)
	defer cancel()
	keyed := c.warmPod(ctx, t, controlKey)
	c.adopts(ctx, t, controlKey, 1)
	c.adopts(ctx, t, []byte("rotated control key"), 0)
	c.waitDeleted(ctx, t, keyed, "whose token the new leader cannot make")

	open := c.warmPod(ctx, t, nil)
	c.adopts(ctx, t, nil, 1)
	c.adopts(ctx, t, controlKey, 0)
	c.waitDeleted(ctx, t, open, "which takes calls without a token")
}

// warmPod starts a warm pod with a backend whose key is key and leaves it
// to the next leader; it returns the pod's name.
func (c *cluster) warmPod(ctx context.Context, t *testing.T, key []byte) string {
	t.Helper()
	b := c.backendKey(t, key)
	inst, err := b.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.Detach()
	b.Close()
	return inst.(*kube.Instance).Name()
}

// adopts checks that a new leader whose key is key adopts n warm pods and
// no claimed ones, and leaves them to the next.
func (c *cluster) adopts(ctx context.Context, t *testing.T, key []byte, n int) {
	t.Helper()
	b := c.backendKey(t, key)
	warm, claimed, err := b.Existing(ctx)
	if err != nil || len(warm) != n || len(claimed) != 0 {
		t.Fatalf("a leader with key %q adopts warm %v and claimed %v, %v; want %d warm", key, warm, claimed, err, n)
	}
	b.Detach()
	b.Close()
}

// waitDeleted waits for the pod named name to be gone.
func (c *cluster) waitDeleted(ctx context.Context, t *testing.T, name, why string) {
	t.Helper()
	for {
		_, err := env.Client.CoreV1().Pods(c.ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("warm pod %s, %s, was not deleted", name, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConflictingClaimLoses has two managers (as in a split brain) claim
// the same warm pod: the runner takes one Specialize, so one wins, and its
// claim is recorded on the pod.
func TestConflictingClaimLoses(t *testing.T) {
	c := newCluster(t)
	ctx, inst1 := c.startPod(t)
	b2 := c.backend(t)
	warm, _, err := b2.Existing(ctx)
	if err != nil || len(warm) != 1 {
		t.Fatalf("second manager sees warm %v, %v; want the one pod", warm, err)
	}
	a := pooltest.Deploy(t, c.redis, "contested", "")
	if _, err := inst1.Specialize(ctx, a.Request()); err != nil {
		t.Fatalf("first claim: %v", err)
	}
	_, err = warm[0].Specialize(ctx, a.Request())
	if connect.CodeOf(err) != connect.CodeAborted || !errors.Is(err, kube.ErrTaken) {
		t.Fatalf("second claim of the same pod: %v, want Aborted (ErrTaken)", err)
	}
	pooltest.Get(t, inst1.AppAddr(), "contested")
	name := inst1.Name()
	for {
		pod, err := env.Client.CoreV1().Pods(c.ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && pod.Labels[kube.LabelState] == kube.StateClaimed &&
			pod.Annotations[kube.AnnAppID] == a.ID && pod.Annotations[kube.AnnAppPort] != "" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the winner's claim was not recorded on pod %s: %v, %v", name, err, pod)
		}
		time.Sleep(20 * time.Millisecond)
	}
	inst1.Stop(time.Second)
}

// TestUnrecordedClaimStopsRunner: when a claim cannot be recorded on the
// pod (here another writer marked it claimed first), the runner, which
// already serves the app, ends with the reason and its pod is deleted, so
// no pod serves an app without saying so.
func TestUnrecordedClaimStopsRunner(t *testing.T) {
	c := newCluster(t)
	ctx, inst := c.startPod(t)
	name := inst.Name()
	patch := []byte(`{"metadata":{"labels":{"` + kube.LabelState + `":"` + kube.StateClaimed + `"}}}`)
	if _, err := env.Client.CoreV1().Pods(c.ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	a := pooltest.Deploy(t, c.redis, "unrecorded", "")
	if _, err := inst.Specialize(ctx, a.Request()); err != nil {
		t.Fatalf("Specialize: %v (the runner was not specialized by anyone)", err)
	}
	select {
	case <-inst.Done():
	case <-ctx.Done():
		t.Fatal("the runner whose claim was not recorded still runs")
	}
	if err := inst.ExitErr(); err == nil || !errors.Is(err, kube.ErrTaken) || !strings.Contains(err.Error(), "record the claim") {
		t.Errorf("ExitErr = %v, want the claim not recorded (ErrTaken)", err)
	}
	c.waitDeleted(ctx, t, name, "whose claim was not recorded")
}

// TestLeaderElection runs two pool managers: one leads; when it stops, the
// other takes the Lease and the runner serving an app with it.
func TestLeaderElection(t *testing.T) {
	c := newCluster(t)
	a := pooltest.Deploy(t, c.redis, "elected", "")
	type state struct {
		mu sync.Mutex
		p  *pool.Pool
		ch chan struct{}
	}
	start := func(id string) (*state, context.CancelFunc, chan struct{}) {
		s := &state{ch: make(chan struct{}, 4)}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			err := kube.RunManager(ctx, kube.ManagerConfig{
				Backend: kube.Config{Client: env.Client, Namespace: c.ns, Pool: "runners", Template: c.template, ControlKey: controlKey, Logger: logger()},
				Leader: kube.LeaderConfig{Client: env.Client, Namespace: c.ns, Lease: "gofastapi-pool", Identity: id,
					LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 100 * time.Millisecond, Logger: logger()},
				Pool: pool.Config{Warm: 1, Max: 3, IdleTimeout: time.Hour, StartTimeout: pooltest.WaitLimit,
					SpecializeTimeout: 30 * time.Second, StopGrace: 5 * time.Second,
					Log: func(string, time.Time, string, string) {}, Logger: logger()},
				Serve: func(p *pool.Pool) {
					s.mu.Lock()
					s.p = p
					s.mu.Unlock()
					s.ch <- struct{}{}
				},
			})
			if err != nil {
				t.Error(err)
			}
		}()
		return s, cancel, done
	}
	waitLead := func(s *state) *pool.Pool {
		t.Helper()
		for {
			select {
			case <-s.ch:
				s.mu.Lock()
				p := s.p
				s.mu.Unlock()
				if p != nil {
					return p
				}
			case <-time.After(pooltest.WaitLimit):
				t.Fatal("no manager became the leader")
			}
		}
	}
	s1, stop1, done1 := start("manager-1")
	p1 := waitLead(s1)
	s2, stop2, done2 := start("manager-2")
	defer func() { stop2(); <-done2 }()

	r := pooltest.Claim(t, p1, a)
	addr := r.Addr()
	pooltest.Get(t, addr, "elected")
	// The port annotation is what the successor routes by.
	deadline := time.Now().Add(pooltest.WaitLimit)
	for c.podAt(t, addr).Annotations[kube.AnnAppPort] == "" {
		if time.Now().After(deadline) {
			t.Fatal("claim never recorded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-s2.ch:
		t.Fatal("the second manager led while the first held the Lease")
	default:
	}
	stop1()
	<-done1
	p2 := waitLead(s2)
	got := p2.Serving(a.ID, a.ServeKey())
	if got == nil || got.Addr() != addr {
		t.Fatalf("new leader serves %s with %v, want the runner at %s", a.ID, got, addr)
	}
	pooltest.Get(t, addr, "elected")
	lease, err := env.Client.CoordinationV1().Leases(c.ns).Get(context.Background(), "gofastapi-pool", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != "manager-2" {
		t.Fatalf("Lease holder: %v, %v; want manager-2", lease.Spec.HolderIdentity, err)
	}
}
