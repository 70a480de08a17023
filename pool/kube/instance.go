package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gofastapi/gofastapi/pool"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

// claimGrace is how long a runner whose claim was not recorded has to
// finish the requests it was given (see settleClaim).
const claimGrace = 5 * time.Second

// Instance is one runner pod.
type Instance struct {
	b    *Backend
	name string

	mu      sync.Mutex
	pod     *corev1.Pod // the latest state the informer saw
	appAddr string

	ready     chan struct{}
	readyOnce sync.Once
	done      chan struct{}
	doneOnce  sync.Once
	exitErr   error // set before done is closed
	stopped   atomic.Bool
}

var _ pool.Instance = (*Instance)(nil)

func newInstance(b *Backend, name string) *Instance {
	return &Instance{b: b, name: name, ready: make(chan struct{}), done: make(chan struct{})}
}

// Name is the pod's name.
func (i *Instance) Name() string { return i.name }

// update takes a pod's new state from the informer.
func (i *Instance) update(pod *corev1.Pod) {
	i.mu.Lock()
	if i.pod != nil && i.pod.UID != pod.UID {
		i.mu.Unlock()
		return
	}
	i.pod = pod
	i.mu.Unlock()
	if why := terminatedReason(pod); why != "" {
		// restartPolicy Never: a runner that ended is gone for good.
		i.exit(fmt.Errorf("runner pod %s: %s", pod.Name, why))
		if !i.b.isDetached() {
			i.b.bg.Add(1)
			go func() {
				defer i.b.bg.Done()
				i.b.deletePod(i.b.ctx, pod.Name, pod.UID, 0)
			}()
		}
		return
	}
	if podReady(pod) {
		i.readyOnce.Do(func() { close(i.ready) })
	}
}

// exit marks the runner gone with err (nil if it was stopped).
func (i *Instance) exit(err error) {
	i.doneOnce.Do(func() {
		if i.stopped.Load() {
			err = nil
		}
		i.exitErr = err
		close(i.done)
		i.b.forget(i)
	})
}

func (i *Instance) current() *corev1.Pod {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.pod
}

// setApp records the app's port on an adopted pod.
func (i *Instance) setApp(port string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.appAddr = net.JoinHostPort(i.pod.Status.PodIP, port)
}

// AppAddr implements pool.Instance.
func (i *Instance) AppAddr() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.appAddr
}

// SetLog implements pool.Instance. A pod's log lines go to the cluster's
// logging (kubectl logs), not through the pool: f is unused.
func (i *Instance) SetLog(f func(t time.Time, stream, text string)) {}

// Done implements pool.Instance: it is closed once the pod was deleted or
// its runner ended.
func (i *Instance) Done() <-chan struct{} { return i.done }

// ExitErr implements pool.Instance.
func (i *Instance) ExitErr() error {
	<-i.done
	return i.exitErr
}

// Stop implements pool.Instance: it deletes the pod, giving the runner
// grace to finish requests in flight, and waits until the pod is gone. A
// detached backend's Stop leaves the pod to the next leader.
func (i *Instance) Stop(grace time.Duration) {
	i.stopped.Store(true)
	if i.b.isDetached() {
		i.exit(nil)
		return
	}
	i.delete(grace)
	select {
	case <-i.done:
	case <-i.b.ctx.Done():
	case <-time.After(grace + 30*time.Second):
		i.b.cfg.Logger.Warn("runner pod still exists after its grace period", "pod", i.name)
	}
}

func (i *Instance) delete(grace time.Duration) {
	var uid types.UID
	if pod := i.current(); pod != nil {
		uid = pod.UID
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := i.b.deletePod(ctx, i.name, uid, grace)
	if err == nil {
		if _, gerr := i.b.cfg.Client.CoreV1().Pods(i.b.cfg.Namespace).Get(ctx, i.name, metav1.GetOptions{}); apierrors.IsNotFound(gerr) {
			i.exit(nil)
		}
	}
}

// Specialize implements pool.Instance. The runner itself takes one
// Specialize only, so of two managers claiming one pod (as in a split
// brain) the second gets Aborted (ErrTaken) from it. Once the runner
// serves the app, the claim is recorded on the pod in the background (see
// recordClaim and settleClaim): the API write is not on the cold start's
// path.
func (i *Instance) Specialize(ctx context.Context, req *v1.SpecializeRequest) (*v1.SpecializeResponse, error) {
	pod := i.current()
	if pod == nil || pod.Status.PodIP == "" {
		return nil, fmt.Errorf("runner pod %s has no address", i.name)
	}
	ip := pod.Status.PodIP
	client := gofastapiv1connect.NewRunnerServiceClient(i.b.http, "http://"+net.JoinHostPort(ip, strconv.Itoa(i.b.controlPort)))
	call := connect.NewRequest(req)
	if nonce := pod.Annotations[AnnControlNonce]; nonce != "" && i.b.cfg.ControlKey != nil {
		call.Header().Set("Authorization", "Bearer "+controlToken(i.b.cfg.ControlKey, nonce))
	}
	res, err := client.Specialize(ctx, call)
	if connect.CodeOf(err) == connect.CodeAborted {
		return nil, connect.NewError(connect.CodeAborted, fmt.Errorf("%w (%s): %v", ErrTaken, i.name, err))
	}
	if err != nil {
		return nil, err
	}
	_, port, err := net.SplitHostPort(res.Msg.GetAppAddr())
	if err != nil {
		return nil, fmt.Errorf("runner pod %s reported app address %q: %w", i.name, res.Msg.GetAppAddr(), err)
	}
	i.mu.Lock()
	i.appAddr = net.JoinHostPort(ip, port)
	i.mu.Unlock()
	i.b.bg.Add(1)
	go func() {
		defer i.b.bg.Done()
		i.settleClaim(req, port)
	}()
	out := res.Msg
	out.AppAddr = i.AppAddr()
	return out, nil
}

// settleClaim records the claim of a pod that serves req's app on port
// (see recordClaim). If it cannot be recorded (another writer changed the
// pod's state, or the API kept refusing), the runner ends with the reason
// and its pod is deleted: a pod that serves an app must say so, or a new
// leader would take it for warm.
func (i *Instance) settleClaim(req *v1.SpecializeRequest, port string) {
	ctx, cancel := context.WithTimeout(i.b.ctx, 30*time.Second)
	err := i.recordClaim(ctx, req, port)
	cancel()
	if err == nil || i.stopped.Load() || i.b.isDetached() || i.b.ctx.Err() != nil {
		return // recorded; or released, or left to the next leader, meanwhile
	}
	err = fmt.Errorf("record the claim on pod %s: %w", i.name, err)
	i.b.cfg.Logger.Warn("runner pod serves an app but its claim was not recorded: stopping it", "pod", i.name, "err", err)
	i.exit(err)
	i.delete(claimGrace)
}

// recordClaim labels the pod claimed for req's app, with the app and the
// port it serves on (what a new leader rebuilds its state from), in a
// merge patch carrying the resourceVersion last seen: if the pod changed
// meanwhile the API server refuses it, and the pod is read again. A pod
// another writer claimed is ErrTaken. Other refusals are retried until ctx
// ends, a gone pod's excepted.
func (i *Instance) recordClaim(ctx context.Context, req *v1.SpecializeRequest, port string) error {
	pod := i.current()
	pods := i.b.cfg.Client.CoreV1().Pods(i.b.cfg.Namespace)
	for attempt := 1; ; attempt++ {
		if pod.Labels[LabelState] != StateWarm {
			return ErrTaken
		}
		lbl := map[string]any{LabelState: StateClaimed}
		if len(validation.IsValidLabelValue(req.GetAppId())) == 0 {
			lbl[LabelApp] = req.GetAppId()
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
			"resourceVersion": pod.ResourceVersion,
			"labels":          lbl,
			"annotations": map[string]string{AnnAppID: req.GetAppId(), AnnVersion: req.GetVersion(),
				AnnServeKey: pool.ServeKey(req), AnnAppPort: port},
		}})
		_, err := pods.Patch(ctx, i.name, types.MergePatchType, patch, metav1.PatchOptions{})
		switch {
		case err == nil || apierrors.IsNotFound(err):
			return err
		case apierrors.IsConflict(err):
			if p, gerr := pods.Get(ctx, i.name, metav1.GetOptions{}); gerr == nil {
				pod = p
				continue
			} else if apierrors.IsNotFound(gerr) {
				return gerr
			}
		}
		select {
		case <-time.After(time.Duration(min(attempt, 10)) * 100 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("%w (last refusal: %v)", ctx.Err(), err)
		}
	}
}
