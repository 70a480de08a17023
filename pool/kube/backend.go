package kube

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/yaml"

	"github.com/gofastapi/gofastapi/pool"
)

// Labels and annotations on runner pods.
const (
	// LabelPool names the pool a runner pod belongs to.
	LabelPool = "gofastapi.dev/pool"
	// LabelState is StateWarm or StateClaimed.
	LabelState = "gofastapi.dev/state"
	// LabelApp is the app a claimed pod serves, when the app id is a valid
	// label value (AnnAppID always has it).
	LabelApp = "gofastapi.dev/app"
	// AnnAppID, AnnVersion, AnnServeKey and AnnAppPort record a claim:
	// the app, its version, what else of its route it was started with
	// (pool.ServeKey) and the port its listener took, all a new leader
	// needs to route to a pod it did not specialize.
	AnnAppID    = "gofastapi.dev/app-id"
	AnnVersion  = "gofastapi.dev/version"
	AnnServeKey = "gofastapi.dev/serve-key"
	AnnAppPort  = "gofastapi.dev/app-port"
	// AnnControlNonce is what the pod's control token is derived from
	// (see controlToken): the pod holds only the token's SHA-256, and any
	// pool manager with Config.ControlKey can call it, a new leader too.
	AnnControlNonce = "gofastapi.dev/control-nonce"
	// AnnControlKey identifies the key the pod's token is derived from
	// (see KeyID): a new leader with another key (the key rotated)
	// cannot call the pod, and does not adopt it warm.
	AnnControlKey = "gofastapi.dev/control-key"

	StateWarm    = "warm"
	StateClaimed = "claimed"

	// ControlPortName names the container port of the runner's control API.
	ControlPortName = "control"
)

// Config configures the kube backend.
type Config struct {
	Client    kubernetes.Interface
	Namespace string
	// Pool is the value of LabelPool on this backend's pods; pools that
	// share a namespace must differ.
	Pool string
	// Template is the runner pod: its first container runs `gofastapi
	// runner` and names its control port ControlPortName.
	Template *corev1.Pod
	// ControlKey derives each pod's control token, which the runner's
	// control API requires of every call (see controlToken). Every pool
	// manager of a pool must have the same. Without it pods take calls
	// from anyone who can reach them, and NetworkPolicy alone keeps apps
	// from other runners' control APIs.
	ControlKey []byte
	Logger     *slog.Logger
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	switch {
	case c.Client == nil:
		return errors.New("kube: Config.Client is nil")
	case c.Namespace == "" || c.Pool == "":
		return errors.New("kube: Config.Namespace and Config.Pool are required")
	case c.Template == nil || len(c.Template.Spec.Containers) == 0:
		return errors.New("kube: Config.Template must be a pod with a container")
	case c.Logger == nil:
		return errors.New("kube: Config.Logger is required")
	}
	_, err := ControlPort(c.Template)
	return err
}

// ControlPort is the port of the runner's control API in the pod template
// t: its first container's port named ControlPortName.
func ControlPort(t *corev1.Pod) (int, error) {
	if len(t.Spec.Containers) == 0 {
		return 0, errors.New("kube: the pod template has no container")
	}
	for _, p := range t.Spec.Containers[0].Ports {
		if p.Name == ControlPortName {
			return int(p.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("kube: the pod template's first container has no port named %q: the pool reaches the runner's control API there", ControlPortName)
}

// Backend runs runners as pods. Its methods are safe for concurrent use.
type Backend struct {
	cfg         Config
	controlPort int
	pods        corelisters.PodLister
	http        *http.Client

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	bg     sync.WaitGroup

	mu       sync.Mutex
	insts    map[string]*Instance // by pod name
	closed   bool
	detached bool // Stop leaves pods alone: a successor adopts them
}

var (
	_ pool.Backend = (*Backend)(nil)
	_ pool.Adopter = (*Backend)(nil)
)

// New starts a Backend's informer and waits until it has listed the pool's
// pods. Close stops it.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	port, _ := ControlPort(cfg.Template)
	b := &Backend{
		cfg:         cfg,
		controlPort: port,
		insts:       map[string]*Instance{},
		http:        &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute}},
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	selector := labels.Set{LabelPool: cfg.Pool}.String()
	factory := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0,
		informers.WithNamespace(cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector }))
	inf := factory.Core().V1().Pods()
	b.pods = inf.Lister()
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { b.observe(obj) },
		UpdateFunc: func(_, obj any) { b.observe(obj) },
		DeleteFunc: b.deleted,
	}); err != nil {
		b.cancel()
		return nil, err
	}
	factory.Start(b.ctx.Done())
	b.bg.Add(1)
	go func() {
		defer b.bg.Done()
		<-b.ctx.Done()
		factory.Shutdown()
	}()
	synced := make(chan bool, 1)
	go func() { synced <- cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) }()
	if !<-synced {
		b.Close()
		return nil, fmt.Errorf("kube: list the runner pods in namespace %s: %w", cfg.Namespace, context.Cause(ctx))
	}
	return b, nil
}

// observe passes a pod's new state to its Instance.
func (b *Backend) observe(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	b.mu.Lock()
	inst := b.insts[pod.Name]
	b.mu.Unlock()
	if inst != nil {
		inst.update(pod)
	}
}

func (b *Backend) deleted(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	b.mu.Lock()
	inst := b.insts[pod.Name]
	delete(b.insts, pod.Name)
	b.mu.Unlock()
	if inst != nil {
		inst.exit(fmt.Errorf("pod %s was deleted", pod.Name))
	}
}

// forget drops inst from the map once it is gone.
func (b *Backend) forget(inst *Instance) {
	b.mu.Lock()
	if b.insts[inst.name] == inst {
		delete(b.insts, inst.name)
	}
	b.mu.Unlock()
}

// register tracks a pod by name and gives it the state the informer has
// already seen, if any (its events may have come before the name was known).
func (b *Backend) register(name string) *Instance {
	inst := newInstance(b, name)
	b.mu.Lock()
	b.insts[name] = inst
	b.mu.Unlock()
	if pod, err := b.pods.Pods(b.cfg.Namespace).Get(name); err == nil {
		inst.update(pod)
	}
	return inst
}

// Start implements pool.Backend: it creates a pod from the template and
// returns once the pod is ready (the runner's readiness probe passed: its
// Python has imported the framework).
func (b *Backend) Start(ctx context.Context) (pool.Instance, error) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	pod := b.cfg.Template.DeepCopy()
	pod.Name = ""
	pod.GenerateName = b.cfg.Pool + "-"
	pod.Namespace = b.cfg.Namespace
	pod.ResourceVersion = ""
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[LabelPool] = b.cfg.Pool
	pod.Labels[LabelState] = StateWarm
	if b.cfg.ControlKey != nil {
		nonce := rand.Text()
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[AnnControlNonce] = nonce
		pod.Annotations[AnnControlKey] = KeyID(b.cfg.ControlKey)
		sum := sha256.Sum256([]byte(controlToken(b.cfg.ControlKey, nonce)))
		c := &pod.Spec.Containers[0]
		c.Args = append(c.Args, "--control-token-sha256="+hex.EncodeToString(sum[:]))
	}
	created, err := b.cfg.Client.CoreV1().Pods(b.cfg.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("kube: create runner pod: %w", err)
	}
	inst := b.register(created.Name)
	select {
	case <-inst.ready:
		return inst, nil
	case <-inst.done:
		inst.delete(0)
		return nil, inst.ExitErr()
	case <-ctx.Done():
		inst.Stop(0)
		return nil, fmt.Errorf("kube: pod %s not ready: %w", created.Name, ctx.Err())
	}
}

// controlToken is the control token of the pod whose AnnControlNonce is
// nonce: an HMAC of it with key, so that only holders of key can make it
// and the pod's spec need not hold it.
func controlToken(key []byte, nonce string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("gofastapi runner control\x00"))
	m.Write([]byte(nonce))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// KeyID names key without revealing it: the start of an HMAC of a fixed
// text with it.
func KeyID(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("gofastapi runner control key id"))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// callable reports whether pod's control API takes b's calls and only
// those of b's key holders: b can make its control token, or, when b has
// no key, it has none. A pod made without a token (by a leader without a
// key) takes any call, so a leader with a key does not adopt it while it
// is warm.
func (b *Backend) callable(pod *corev1.Pod) bool {
	if b.cfg.ControlKey == nil {
		return pod.Annotations[AnnControlNonce] == ""
	}
	return pod.Annotations[AnnControlNonce] != "" && pod.Annotations[AnnControlKey] == KeyID(b.cfg.ControlKey)
}

// Existing implements pool.Adopter: warm ready pods become the warm set,
// pods that were specialized keep serving their app. Pods in between (not
// ready yet, or claimed but never specialized) are deleted: nobody waits for
// them; so are warm pods whose control token b cannot make (see callable),
// which no claim could specialize.
func (b *Backend) Existing(ctx context.Context) (warm []pool.Instance, claimed []pool.Adopted, err error) {
	pods, err := b.pods.Pods(b.cfg.Namespace).List(labels.Everything())
	if err != nil {
		return nil, nil, err
	}
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil {
			continue
		}
		b.mu.Lock()
		_, known := b.insts[pod.Name]
		b.mu.Unlock()
		if known {
			continue
		}
		ok := podReady(pod) && !podTerminated(pod)
		port := pod.Annotations[AnnAppPort]
		switch state := pod.Labels[LabelState]; {
		case ok && state == StateWarm && b.callable(pod):
			inst := b.register(pod.Name)
			warm = append(warm, inst)
		case ok && state == StateClaimed && port != "" && pod.Annotations[AnnAppID] != "":
			inst := b.register(pod.Name)
			inst.setApp(port)
			claimed = append(claimed, pool.Adopted{Inst: inst, AppID: pod.Annotations[AnnAppID], Version: pod.Annotations[AnnVersion],
				ServeKey: pod.Annotations[AnnServeKey]})
		default:
			b.deletePod(ctx, pod.Name, pod.UID, 0)
		}
	}
	return warm, claimed, nil
}

// deletePod deletes a pod by name and uid (never a namesake made later).
func (b *Backend) deletePod(ctx context.Context, name string, uid types.UID, grace time.Duration) error {
	secs := int64((grace + time.Second - 1) / time.Second)
	opts := metav1.DeleteOptions{GracePeriodSeconds: &secs}
	if uid != "" {
		opts.Preconditions = metav1.NewUIDPreconditions(string(uid))
	}
	err := b.cfg.Client.CoreV1().Pods(b.cfg.Namespace).Delete(ctx, name, opts)
	if err != nil && !apierrors.IsNotFound(err) {
		b.cfg.Logger.Warn("delete runner pod", "pod", name, "err", err)
		return err
	}
	return nil
}

// Detach makes Stop leave pods alone: a leader that steps down calls it
// before closing its pool, and its successor adopts the pods.
func (b *Backend) Detach() {
	b.mu.Lock()
	b.detached = true
	b.mu.Unlock()
}

func (b *Backend) isDetached() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.detached
}

// Close stops the informer. Start fails with ErrClosed afterwards. Close
// is idempotent.
func (b *Backend) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	insts := make([]*Instance, 0, len(b.insts))
	for _, inst := range b.insts {
		insts = append(insts, inst)
	}
	b.mu.Unlock()
	b.cancel()
	b.bg.Wait()
	for _, inst := range insts {
		inst.exit(ErrClosed)
	}
	b.http.CloseIdleConnections()
}

// podReady reports whether the pod has an address and passes its readiness probe.
func podReady(pod *corev1.Pod) bool {
	if pod.Status.PodIP == "" || pod.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podTerminated reports why the pod's runner ended, or "" while it runs.
func podTerminated(pod *corev1.Pod) bool { return terminatedReason(pod) != "" }

func terminatedReason(pod *corev1.Pod) string {
	if pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded {
		for _, cs := range pod.Status.ContainerStatuses {
			if t := cs.State.Terminated; t != nil {
				return fmt.Sprintf("container %s exited with code %d (%s) %s", cs.Name, t.ExitCode, t.Reason, t.Message)
			}
		}
		return "pod " + string(pod.Status.Phase) + ": " + pod.Status.Reason + " " + pod.Status.Message
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil {
			return fmt.Sprintf("container %s exited with code %d (%s) %s", cs.Name, t.ExitCode, t.Reason, t.Message)
		}
	}
	return ""
}

// LoadTemplate reads a runner pod template (YAML or JSON, a v1 Pod).
func LoadTemplate(path string) (*corev1.Pod, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pod template: %w", err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(data, &pod); err != nil {
		return nil, fmt.Errorf("pod template %s: %w", path, err)
	}
	if pod.Kind != "Pod" || len(pod.Spec.Containers) == 0 {
		return nil, fmt.Errorf("pod template %s: want a v1 Pod with a container", path)
	}
	return &pod, nil
}
