package kube_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gofastapi/gofastapi/pool"
	"github.com/gofastapi/gofastapi/pool/kube"
	"github.com/gofastapi/gofastapi/pool/local"
	"github.com/gofastapi/gofastapi/pool/pooltest"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

// stubRunnerMain is a stand-in runner for measuring the pool manager with
// many pods: it answers the readiness probe and Specialize at once, with no
// Python behind it, so that 200 pods fit on a small machine and the figures
// are the pool manager's and the API server's, not Python's.
func stubRunnerMain(args []string) {
	control := ""
	for _, a := range args {
		if v, ok := cutPrefix(a, "--control="); ok {
			control = v
		}
	}
	l, err := net.Listen("tcp", control)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.Handle(gofastapiv1connect.NewRunnerServiceHandler(stubRunner{addr: l.Addr().String()}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {})
	http.Serve(l, mux)
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return "", false
}

type stubRunner struct{ addr string }

func (s stubRunner) Specialize(context.Context, *connect.Request[v1.SpecializeRequest]) (*connect.Response[v1.SpecializeResponse], error) {
	return connect.NewResponse(&v1.SpecializeResponse{AppAddr: s.addr}), nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// claimToReady claims n runners for an app one after another, each time
// until the app answers its first request, and returns the times.
func claimToReady(t *testing.T, b pool.Backend, rdbApp func() pooltest.App, n int) []time.Duration {
	p, _ := pooltest.NewPool(t, b, pooltest.Options{Warm: 1, Max: 3})
	var out []time.Duration
	for i := 0; i < n; i++ {
		a := rdbApp()
		ctx, cancel := context.WithTimeout(context.Background(), pooltest.WaitLimit)
		if err := p.WaitWarm(ctx, 1); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		r, err := p.Claim(ctx, a.Request())
		if err != nil {
			t.Fatal(err)
		}
		pooltest.Get(t, r.Addr(), a.ID)
		out = append(out, time.Since(t0))
		cancel()
		r.Release()
		<-r.Done()
	}
	p.Close()
	return out
}

// TestMeasure prints the kube backend's figures beside baselines from the
// same run (make bench): claim-to-ready of real runner pods against local
// runners, and the pool manager's handling of 200 pods (create warm, claim,
// release) against plain API calls for as many pods.
func TestMeasure(t *testing.T) {
	if os.Getenv("GOFASTAPI_MEASURE") == "" {
		t.Skip("set GOFASTAPI_MEASURE=1 (make bench)")
	}
	c := newCluster(t)
	const n = 10
	next := 0
	newApp := func() pooltest.App {
		next++
		return pooltest.Deploy(t, c.redis, fmt.Sprintf("m%d", next), "")
	}
	kubeTimes := claimToReady(t, c.backend(t), newApp, n)
	lb, err := local.New(local.Config{Command: []string{os.Args[0], "runner"}, Python: "/usr/bin/python3",
		Dir: filepath.Join(t.TempDir(), "runners"), RedisURL: c.runnerURL, ReadyTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	localTimes := claimToReady(t, lb, newApp, n)
	fmt.Printf("kube claim-to-ready (warm pod -> app answered), median of %d: %s   baseline local runner: %s\n",
		n, ms(median(kubeTimes)), ms(median(localTimes)))

	// 200 pods through the pool manager, with stand-in runners.
	pods := 200
	if v, err := strconv.Atoi(os.Getenv("GOFASTAPI_MEASURE_PODS")); err == nil && v > 0 {
		pods = v
	}
	stub := c.template.DeepCopy()
	stub.Spec.Containers[0].Command = []string{"/usr/local/bin/gofastapi", "stubrunner"}
	stub.Spec.Containers[0].Args = []string{"--control=$(POD_IP):9000"}
	stub.Spec.Volumes, stub.Spec.Containers[0].VolumeMounts = nil, nil

	// Baseline: the same pods made and removed with plain API calls, their
	// state polled every 20 ms.
	podsAPI := env.Client.CoreV1().Pods(c.ns)
	count := func(selector string) (total, ready int) {
		l, err := podsAPI.List(context.Background(), metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			t.Fatal(err)
		}
		for i := range l.Items {
			if isReady(&l.Items[i]) {
				ready++
			}
		}
		return len(l.Items), ready
	}
	waitFor := func(what, selector string, done func(total, ready int) bool) {
		deadline := time.Now().Add(3 * time.Minute)
		for {
			total, ready := count(selector)
			if done(total, ready) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 3 minutes (%d pods, %d ready)", what, total, ready)
			}
			time.Sleep(20 * time.Millisecond) // polling the API
		}
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := 0; i < pods; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p := stub.DeepCopy()
			p.GenerateName = "raw-"
			p.Labels["raw"] = "1"
			if _, err := podsAPI.Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	waitFor("plain pods ready", "raw=1", func(total, ready int) bool { return ready == pods })
	rawCreate := time.Since(t0)
	t0 = time.Now()
	if err := podsAPI.DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "raw=1"}); err != nil {
		t.Fatal(err)
	}
	waitFor("plain pods deleted", "raw=1", func(total, ready int) bool { return total == 0 })
	rawDelete := time.Since(t0)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := kube.New(ctx, kube.Config{Client: env.Client, Namespace: c.ns, Pool: "bench", Template: stub, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	t0 = time.Now()
	p, _ := pooltest.NewPool(t, b, pooltest.Options{Warm: pods, Max: pods})
	if err := p.WaitWarm(ctx, pods); err != nil {
		t.Fatal(err)
	}
	poolCreate := time.Since(t0)
	t0 = time.Now()
	runners := make([]*pool.Runner, pods)
	for i := range pods {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r, err := p.Claim(ctx, &v1.SpecializeRequest{AppId: fmt.Sprintf("app%d", i), Version: "v"})
			if err != nil {
				t.Error(err)
				return
			}
			runners[i] = r
		}()
	}
	wg.Wait()
	poolClaim := time.Since(t0)
	// Until every claim is recorded on its pod, in the background.
	for {
		l, err := podsAPI.List(ctx, metav1.ListOptions{LabelSelector: kube.LabelPool + "=bench," + kube.LabelState + "=" + kube.StateClaimed})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Items) == pods {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling the API for the records
	}
	poolRecord := time.Since(t0)
	t0 = time.Now()
	for _, r := range runners {
		if r != nil {
			r.Release()
		}
	}
	// Until the released pods are gone from the API (Done closes at once).
	for {
		l, err := podsAPI.List(ctx, metav1.ListOptions{LabelSelector: kube.LabelPool + "=bench," + kube.LabelState + "=" + kube.StateClaimed})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Items) == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling the API for the deletions
	}
	poolReap := time.Since(t0)
	fmt.Printf("pool manager, %d pods: create warm %s (%.0f pods/s)   baseline plain API create+ready %s\n",
		pods, ms(poolCreate), float64(pods)/poolCreate.Seconds(), ms(rawCreate))
	fmt.Printf("pool manager, %d pods: claim %s (%.0f claims/s, each a Specialize call), all recorded on the pods (a guarded label patch each) %s\n",
		pods, ms(poolClaim), float64(pods)/poolClaim.Seconds(), ms(poolRecord))
	fmt.Printf("pool manager, %d pods: release/reap %s (%.0f pods/s)   baseline plain API delete %s\n",
		pods, ms(poolReap), float64(pods)/poolReap.Seconds(), ms(rawDelete))
}

func isReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
