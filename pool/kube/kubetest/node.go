package kubetest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
)

// NodeConfig configures a Node.
type NodeConfig struct {
	Client kubernetes.Interface
	// Name is the node's name; pods bound to it are its to run.
	Name string
	// Dir holds the pods' volumes and logs.
	Dir string
	// Paths maps paths of the image (the command, its arguments) to paths on
	// this machine, by longest prefix: for example the image's
	// /usr/local/bin/gofastapi to the test binary. Mount paths of the pod's
	// volumes are mapped to the volumes' directories the same way.
	Paths  map[string]string
	Logger *slog.Logger
}

// Node plays the kubelet's part for pods on one machine without a container
// runtime, and the scheduler's: it binds every unscheduled pod to itself,
// starts the first container's command as a local process with the pod's
// environment ($(VAR) expansion, values from fields, Secrets and
// ConfigMaps) and volumes (emptyDir, Secret, ConfigMap as directories), on
// an address of its own in 127.0.0.0/8 (the pod IP), probes its readiness
// (httpGet), and reports status through the API: Running, Ready, the pod
// IP, and the container's termination. A pod being deleted gets SIGTERM,
// SIGKILL after its grace period, and is then removed, as a kubelet does.
// Only what the pool's runner pods use is implemented: one container, no
// restarts (restartPolicy Never), no images (Paths stands in for them).
type Node struct {
	cfg    NodeConfig
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	runs   map[types.UID]*podRun
	nextIP uint32
}

type podRun struct {
	ns, name string
	uid      types.UID
	ip       string
	cmd      *exec.Cmd
	exited   chan struct{}
	killOnce sync.Once
	deleting chan struct{} // closed when the pod's deletion was seen
	delOnce  sync.Once
	grace    time.Duration
}

// StartNode starts a Node. Stop stops it and kills its pods' processes.
func StartNode(cfg NodeConfig) (*Node, error) {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, runs: map[types.UID]*podRun{}, nextIP: 127<<24 | 1<<16 | 1}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactory(cfg.Client, 0)
	inf := factory.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { n.handle(obj) },
		UpdateFunc: func(_, obj any) { n.handle(obj) },
	}); err != nil {
		return nil, err
	}
	factory.Start(n.ctx.Done())
	if !cache.WaitForCacheSync(n.ctx.Done(), inf.HasSynced) {
		return nil, errors.New("kubetest: node informer did not sync")
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		<-n.ctx.Done()
		factory.Shutdown()
	}()
	return n, nil
}

// Stop kills every pod process and stops the Node.
func (n *Node) Stop() {
	n.cancel()
	n.mu.Lock()
	runs := make([]*podRun, 0, len(n.runs))
	for _, r := range n.runs {
		runs = append(runs, r)
	}
	n.mu.Unlock()
	for _, r := range runs {
		r.kill()
	}
	n.wg.Wait()
}

// Kill ends a pod's process with SIGKILL, as if it crashed.
func (n *Node) Kill(ns, name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, r := range n.runs {
		if r.ns == ns && r.name == name {
			r.kill()
			return nil
		}
	}
	return fmt.Errorf("kubetest: no process for pod %s/%s", ns, name)
}

func (r *podRun) kill() {
	r.killOnce.Do(func() {
		if r.cmd != nil && r.cmd.Process != nil {
			_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		}
	})
}

func (n *Node) handle(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || n.ctx.Err() != nil {
		return
	}
	switch {
	case pod.Spec.NodeName == "" && pod.DeletionTimestamp == nil:
		n.bind(pod)
	case pod.Spec.NodeName != n.cfg.Name:
	case pod.DeletionTimestamp != nil:
		n.mu.Lock()
		r := n.runs[pod.UID]
		n.mu.Unlock()
		if r == nil {
			n.remove(pod.Namespace, pod.Name, pod.UID)
			return
		}
		grace := time.Duration(0)
		if g := pod.DeletionGracePeriodSeconds; g != nil {
			grace = time.Duration(*g) * time.Second
		}
		r.delOnce.Do(func() { r.grace = grace; close(r.deleting) })
	case pod.Status.Phase == corev1.PodPending:
		n.mu.Lock()
		_, known := n.runs[pod.UID]
		var r *podRun
		if !known {
			r = &podRun{ns: pod.Namespace, name: pod.Name, uid: pod.UID, exited: make(chan struct{}), deleting: make(chan struct{})}
			r.ip = ipString(n.nextIP)
			n.nextIP++
			n.runs[pod.UID] = r
		}
		n.mu.Unlock()
		if !known {
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				n.run(pod.DeepCopy(), r)
			}()
		}
	}
}

func ipString(v uint32) string {
	return net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)).String()
}

func (n *Node) bind(pod *corev1.Pod) {
	err := n.cfg.Client.CoreV1().Pods(pod.Namespace).Bind(n.ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: n.cfg.Name},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) && n.ctx.Err() == nil {
		n.cfg.Logger.Warn("kubetest: bind pod", "pod", pod.Name, "err", err)
	}
}

// remove deletes a pod whose process is gone, as the kubelet does last.
func (n *Node) remove(ns, name string, uid types.UID) {
	zero := int64(0)
	err := n.cfg.Client.CoreV1().Pods(ns).Delete(context.Background(), name,
		metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: metav1.NewUIDPreconditions(string(uid))})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		n.cfg.Logger.Warn("kubetest: remove pod", "pod", name, "err", err)
	}
}

// run starts a pod's process and follows it until the pod is gone.
func (n *Node) run(pod *corev1.Pod, r *podRun) {
	defer func() {
		n.mu.Lock()
		delete(n.runs, r.uid)
		n.mu.Unlock()
	}()
	dir := filepath.Join(n.cfg.Dir, string(pod.UID))
	cmd, err := n.command(pod, r, dir)
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		n.cfg.Logger.Warn("kubetest: start pod", "pod", pod.Name, "err", err)
		close(r.exited)
		n.setStatus(pod, func(p *corev1.Pod) { terminated(p, 128, "StartError", err.Error()) })
		select {
		case <-r.deleting:
		case <-n.ctx.Done():
		}
		n.remove(r.ns, r.name, r.uid)
		os.RemoveAll(dir)
		return
	}
	n.mu.Lock()
	r.cmd = cmd
	n.mu.Unlock()
	var exitCode int
	go func() {
		err := cmd.Wait()
		exitCode = cmd.ProcessState.ExitCode()
		if exitCode < 0 {
			exitCode = 137
		}
		_ = err
		close(r.exited)
	}()
	start := metav1.Now()
	n.setStatus(pod, func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodRunning
		p.Status.PodIP, p.Status.PodIPs = r.ip, []corev1.PodIP{{IP: r.ip}}
		p.Status.HostIP = "127.0.0.1"
		p.Status.StartTime = &start
		setCondition(p, corev1.PodScheduled, true)
		setCondition(p, corev1.PodInitialized, true)
		setCondition(p, corev1.ContainersReady, false)
		setCondition(p, corev1.PodReady, false)
		c := p.Spec.Containers[0]
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: c.Name, Image: c.Image,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: start}}, Started: ptr(true)}}
	})
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		if n.probe(pod, r) {
			n.setStatus(pod, func(p *corev1.Pod) {
				setCondition(p, corev1.ContainersReady, true)
				setCondition(p, corev1.PodReady, true)
				if len(p.Status.ContainerStatuses) == 1 {
					p.Status.ContainerStatuses[0].Ready = true
				}
			})
		}
	}()
	select {
	case <-r.exited:
		<-probeDone
		reason := "Completed"
		if exitCode != 0 {
			reason = "Error"
		}
		n.setStatus(pod, func(p *corev1.Pod) { terminated(p, exitCode, reason, "") })
		select {
		case <-r.deleting:
		case <-n.ctx.Done():
			os.RemoveAll(dir)
			return
		}
	case <-r.deleting:
		if r.grace > 0 {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-r.exited:
			case <-time.After(r.grace):
			}
		}
		r.kill()
		<-r.exited
		<-probeDone
	case <-n.ctx.Done():
		r.kill()
		<-r.exited
		<-probeDone
		os.RemoveAll(dir)
		return
	}
	n.remove(r.ns, r.name, r.uid)
	os.RemoveAll(dir)
}

// probe runs the container's httpGet readiness probe until it passes (true)
// or the process exits (false). Without a probe a running pod is ready.
func (n *Node) probe(pod *corev1.Pod, r *podRun) bool {
	c := pod.Spec.Containers[0]
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil {
		return true
	}
	g := c.ReadinessProbe.HTTPGet
	port := g.Port.IntValue()
	if port == 0 {
		for _, p := range c.Ports {
			if p.Name == g.Port.StrVal {
				port = int(p.ContainerPort)
			}
		}
	}
	url := "http://" + net.JoinHostPort(r.ip, strconv.Itoa(port)) + g.Path
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode >= 200 && resp.StatusCode < 400 {
				return true
			}
		}
		select {
		case <-r.exited:
			return false
		case <-n.ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond): // faster than a kubelet's period: tests wait on it
		}
	}
}

// command builds the process of the pod's first container.
func (n *Node) command(pod *corev1.Pod, r *podRun, dir string) (*exec.Cmd, error) {
	c := pod.Spec.Containers[0]
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	paths := map[string]string{}
	for k, v := range n.cfg.Paths {
		paths[k] = v
	}
	vols := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		vdir := filepath.Join(dir, "volumes", v.Name)
		if err := os.MkdirAll(vdir, 0o700); err != nil {
			return nil, err
		}
		vols[v.Name] = vdir
		var data map[string][]byte
		switch {
		case v.Secret != nil:
			s, err := n.cfg.Client.CoreV1().Secrets(pod.Namespace).Get(n.ctx, v.Secret.SecretName, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			data = s.Data
		case v.ConfigMap != nil:
			cm, err := n.cfg.Client.CoreV1().ConfigMaps(pod.Namespace).Get(n.ctx, v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			data = map[string][]byte{}
			for k, s := range cm.Data {
				data[k] = []byte(s)
			}
		}
		for k, b := range data {
			if err := os.WriteFile(filepath.Join(vdir, k), b, 0o600); err != nil {
				return nil, err
			}
		}
	}
	for _, m := range c.VolumeMounts {
		if d, ok := vols[m.Name]; ok {
			paths[m.MountPath] = d
		}
	}
	env := map[string]string{}
	var envList []string
	for _, e := range c.Env {
		val := e.Value
		if f := e.ValueFrom; f != nil {
			var err error
			if val, err = n.envFrom(pod, r, f); err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
		} else {
			val = expand(val, env)
		}
		env[e.Name] = val
		envList = append(envList, e.Name+"="+val)
	}
	var argv []string
	for _, a := range append(append([]string(nil), c.Command...), c.Args...) {
		argv = append(argv, mapPaths(expand(a, env), paths))
	}
	if len(argv) == 0 {
		return nil, errors.New("the container has no command: the test node runs no images")
	}
	logf, err := os.Create(filepath.Join(dir, "container.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, envList...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd, nil
}

func (n *Node) envFrom(pod *corev1.Pod, r *podRun, f *corev1.EnvVarSource) (string, error) {
	switch {
	case f.FieldRef != nil:
		switch f.FieldRef.FieldPath {
		case "status.podIP":
			return r.ip, nil
		case "metadata.name":
			return pod.Name, nil
		case "metadata.namespace":
			return pod.Namespace, nil
		}
		return "", fmt.Errorf("field %s is not supported by the test node", f.FieldRef.FieldPath)
	case f.SecretKeyRef != nil:
		s, err := n.cfg.Client.CoreV1().Secrets(pod.Namespace).Get(n.ctx, f.SecretKeyRef.Name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		return string(s.Data[f.SecretKeyRef.Key]), nil
	case f.ConfigMapKeyRef != nil:
		cm, err := n.cfg.Client.CoreV1().ConfigMaps(pod.Namespace).Get(n.ctx, f.ConfigMapKeyRef.Name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		return cm.Data[f.ConfigMapKeyRef.Key], nil
	}
	return "", errors.New("unsupported valueFrom")
}

// expand replaces $(NAME) with earlier variables, as the kubelet does.
func expand(s string, env map[string]string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "$(")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := strings.IndexByte(s[i:], ')')
		if j < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		name := s[i+2 : i+j]
		if v, ok := env[name]; ok {
			b.WriteString(v)
		} else {
			b.WriteString(s[i : i+j+1])
		}
		s = s[i+j+1:]
	}
}

// mapPaths rewrites an argument that is a path, or a flag=path, by the
// longest matching prefix in paths.
func mapPaths(arg string, paths map[string]string) string {
	prefix, val := "", arg
	if i := strings.IndexByte(arg, '='); i >= 0 && strings.HasPrefix(arg, "-") {
		prefix, val = arg[:i+1], arg[i+1:]
	}
	keys := make([]string, 0, len(paths))
	for k := range paths {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, k := range keys {
		if val == k || strings.HasPrefix(val, strings.TrimSuffix(k, "/")+"/") {
			return prefix + paths[k] + val[len(k):]
		}
	}
	return arg
}

func (n *Node) setStatus(pod *corev1.Pod, mutate func(*corev1.Pod)) {
	pods := n.cfg.Client.CoreV1().Pods(pod.Namespace)
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		cur, err := pods.Get(context.Background(), pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != pod.UID {
			return nil
		}
		mutate(cur)
		_, err = pods.UpdateStatus(context.Background(), cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil && !apierrors.IsNotFound(err) && n.ctx.Err() == nil {
		n.cfg.Logger.Warn("kubetest: update pod status", "pod", pod.Name, "err", err)
	}
}

func terminated(p *corev1.Pod, code int, reason, msg string) {
	p.Status.Phase = corev1.PodFailed
	if code == 0 {
		p.Status.Phase = corev1.PodSucceeded
	}
	setCondition(p, corev1.ContainersReady, false)
	setCondition(p, corev1.PodReady, false)
	c := p.Spec.Containers[0]
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: c.Name, Image: c.Image,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: int32(code), Reason: reason, Message: msg, FinishedAt: metav1.Now()}}}}
}

func setCondition(p *corev1.Pod, t corev1.PodConditionType, ok bool) {
	st := corev1.ConditionFalse
	if ok {
		st = corev1.ConditionTrue
	}
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			if p.Status.Conditions[i].Status != st {
				p.Status.Conditions[i].Status = st
				p.Status.Conditions[i].LastTransitionTime = metav1.Now()
			}
			return
		}
	}
	p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: t, Status: st, LastTransitionTime: metav1.Now()})
}

func ptr[T any](v T) *T { return &v }
