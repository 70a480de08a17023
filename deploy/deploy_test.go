// Package deploy holds the Kubernetes manifests (base, overlays), the image
// recipes and the test environment's build script; its tests build every
// overlay with kustomize and apply the result, server-side and dry-run,
// to a real kube-apiserver.
package deploy

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/gofastapi/gofastapi/pool/kube"
	"github.com/gofastapi/gofastapi/pool/kube/kubetest"
)

var env *kubetest.Env

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gofastapi-deploytest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if env, err = kubetest.Start(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Stop()
	return m.Run()
}

// build runs kustomize on an overlay.
func build(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range rm.Resources() {
		data, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		o := &unstructured.Unstructured{}
		if err := o.UnmarshalJSON(data); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o)
	}
	return objs
}

// applier applies objects server-side through the dynamic client.
type applier struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func newApplier(t *testing.T) *applier {
	t.Helper()
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	return &applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(env.Client.Discovery()))}
}

// apply applies obj with strict field validation; dryRun leaves nothing behind.
func (a *applier) apply(obj *unstructured.Unstructured, dryRun bool) error {
	gvk := obj.GroupVersionKind()
	mapping, err := a.mapper.RESTMapping(schema.GroupKind{Group: gvk.Group, Kind: gvk.Kind}, gvk.Version)
	if err != nil {
		return fmt.Errorf("%s %s: %w", gvk.Kind, obj.GetName(), err)
	}
	data, err := obj.MarshalJSON()
	if err != nil {
		return err
	}
	opts := metav1.PatchOptions{FieldManager: "gofastapi-deploy-test", FieldValidation: "Strict", Force: ptr(true)}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	var ri dynamic.ResourceInterface = a.dyn.Resource(mapping.Resource)
	if mapping.Scope.Name() == "namespace" {
		ri = a.dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace())
	}
	if _, err := ri.Patch(context.Background(), obj.GetName(), types.ApplyPatchType, data, opts); err != nil {
		return fmt.Errorf("%s %s/%s: %w", gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// TestOverlaysApply builds each overlay and applies it, dry-run, to the API
// server: schema errors, unknown fields, bad references between RBAC
// objects and what the server validates fail here. Namespaces are applied
// for real, since namespaced objects cannot be checked without them.
func TestOverlaysApply(t *testing.T) {
	a := newApplier(t)
	for _, overlay := range []string{"overlays/dev", "overlays/prod"} {
		t.Run(overlay, func(t *testing.T) {
			objs := build(t, overlay)
			kinds := map[string]int{}
			for _, o := range objs {
				kinds[o.GetKind()]++
				if o.GetKind() == "Secret" {
					t.Errorf("Secret %s is inlined in the manifests; reference it and create it out of band", o.GetName())
				}
				if o.GetKind() == "Namespace" {
					if err := a.apply(o, false); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, o := range objs {
				if o.GetKind() != "Namespace" {
					if err := a.apply(o, true); err != nil {
						t.Error(err)
					}
				}
			}
			want := map[string]int{"Namespace": 2, "Deployment": 3, "StatefulSet": 2, "Service": 5,
				"HorizontalPodAutoscaler": 1, "ServiceAccount": 1, "Role": 2, "RoleBinding": 2, "NetworkPolicy": 5, "ConfigMap": 2}
			for k, n := range want {
				if kinds[k] != n {
					t.Errorf("%s has %d %s, want %d", overlay, kinds[k], k, n)
				}
			}
		})
	}
}

// TestDryRunCatchesErrors is the control for TestOverlaysApply: a manifest
// with an unknown field and one with a bad value fail the same apply.
func TestDryRunCatchesErrors(t *testing.T) {
	a := newApplier(t)
	objs := build(t, "overlays/dev")
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			if err := a.apply(o, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		bad := o.DeepCopy()
		unstructured.SetNestedField(bad.Object, "yes", "spec", "template", "spec", "automountServiceAcountToken")
		if err := a.apply(bad, true); err == nil || !strings.Contains(err.Error(), "automountServiceAcountToken") {
			t.Errorf("a Deployment with a misspelt field applied: %v", err)
		}
		bad = o.DeepCopy()
		unstructured.SetNestedField(bad.Object, int64(-1), "spec", "replicas")
		if err := a.apply(bad, true); err == nil {
			t.Error("a Deployment with replicas -1 applied")
		}
		break
	}
}

// TestPoolRBAC checks that the pool manager may touch only pods in the
// runner namespace and the Lease in its own.
func TestPoolRBAC(t *testing.T) {
	for _, o := range build(t, "overlays/prod") {
		if o.GetKind() != "Role" {
			continue
		}
		rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
		for _, r := range rules {
			res, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "resources")
			switch o.GetNamespace() {
			case "gofastapi-runners":
				if strings.Join(res, ",") != "pods" {
					t.Errorf("role %s in the runner namespace grants %v, want pods only", o.GetName(), res)
				}
			case "gofastapi":
				if strings.Join(res, ",") != "leases" {
					t.Errorf("role %s in the platform namespace grants %v, want leases only", o.GetName(), res)
				}
			default:
				t.Errorf("role %s in namespace %q", o.GetName(), o.GetNamespace())
			}
		}
	}
}

// TestRunnerPodRestricted creates the runner pod template (dry-run) in a
// namespace that enforces the restricted Pod Security level, and checks
// that a template without its security settings is refused there.
func TestRunnerPodRestricted(t *testing.T) {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "pss-restricted", Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}}}
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tmpl, err := kube.LoadTemplate(filepath.Join("base", "runner", "runner-pod.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	create := func(pod *corev1.Pod) error {
		pod = pod.DeepCopy()
		pod.GenerateName = "runner-"
		_, err := env.Client.CoreV1().Pods(ns.Name).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}
	if err := create(tmpl); err != nil {
		t.Fatalf("runner pod template in a restricted namespace: %v", err)
	}
	c := tmpl.Spec.Containers[0]
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Error("the runner container lacks CPU or memory requests and limits")
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("the runner's root filesystem is writable")
	}
	if a := tmpl.Spec.AutomountServiceAccountToken; a == nil || *a {
		t.Error("the runner pod mounts a service account token")
	}

	loose := tmpl.DeepCopy()
	loose.Spec.SecurityContext = nil
	loose.Spec.Containers[0].SecurityContext = nil
	err = create(loose)
	if err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
		t.Fatalf("a runner pod without its security context: %v, want refused by PodSecurity", err)
	}
}

// TestOverlayPoolArgs checks that the overlays' patches land on the pool
// manager's flags they mean (they address arguments by position).
func TestOverlayPoolArgs(t *testing.T) {
	want := map[string][]string{
		"overlays/dev":  {"--warm=2", "--max-runners=20", "--runner-image=gofastapi/runner:dev", "--backend=kube"},
		"overlays/prod": {"--warm=20", "--max-runners=1000", "--runner-image=registry.example.com/gofastapi/runner:1.0.0", "--backend=kube"},
	}
	for overlay, flags := range want {
		for _, o := range build(t, overlay) {
			if o.GetKind() != "Deployment" || o.GetName() != "gofastapi-pool" {
				continue
			}
			cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			args, _, _ := unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
			have := map[string]bool{}
			for _, a := range args {
				have[a] = true
			}
			for _, f := range flags {
				if !have[f] {
					t.Errorf("%s: pool manager args %q lack %s", overlay, args, f)
				}
			}
		}
	}
}

// TestPlatformKeepsMongoDBUsers: the cluster's MongoDB has users, so every
// platform container that reaches it (gateways and control plane, which run
// the database front) keeps a MongoDB user per platform database user and
// signs app connections in as their owners; without it the front's store
// connections are refused.
func TestPlatformKeepsMongoDBUsers(t *testing.T) {
	for _, overlay := range []string{"overlays/dev", "overlays/prod"} {
		seen := 0
		for _, o := range build(t, overlay) {
			if o.GetKind() != "Deployment" {
				continue
			}
			cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			for _, c := range cs {
				env, _, _ := unstructured.NestedSlice(c.(map[string]any), "env")
				vars := map[string]any{}
				for _, e := range env {
					e := e.(map[string]any)
					vars[e["name"].(string)] = e["value"]
				}
				if _, ok := vars["MONGO_URI"]; !ok {
					continue
				}
				seen++
				if v := vars["GOFASTAPI_DB_MONGO_USERS"]; v != "1" {
					t.Errorf("%s: %s reaches MongoDB with GOFASTAPI_DB_MONGO_USERS=%v, want 1", overlay, o.GetName(), v)
				}
			}
		}
		if seen < 2 {
			t.Errorf("%s: %d platform containers reach MongoDB, want the gateway and the control plane", overlay, seen)
		}
	}
}

// TestPublicURL: every platform container that builds app URLs (those
// told the domain) is told how users reach it too, and each overlay's
// public URL is on its domain: `gofastapi dev` refuses to start otherwise.
func TestPublicURL(t *testing.T) {
	for _, overlay := range []string{"overlays/dev", "overlays/prod"} {
		var domain, public string
		told := 0
		for _, o := range build(t, overlay) {
			switch o.GetKind() {
			case "ConfigMap":
				if o.GetName() == "gofastapi-config" {
					domain, _, _ = unstructured.NestedString(o.Object, "data", "domain")
					public, _, _ = unstructured.NestedString(o.Object, "data", "public-url")
				}
			case "Deployment":
				cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
				for _, c := range cs {
					env, _, _ := unstructured.NestedSlice(c.(map[string]any), "env")
					keys := map[string]string{}
					for _, e := range env {
						key, _, _ := unstructured.NestedString(e.(map[string]any), "valueFrom", "configMapKeyRef", "key")
						keys[e.(map[string]any)["name"].(string)] = key
					}
					if keys["DOMAIN"] == "" {
						continue
					}
					told++
					if keys["PUBLIC_URL"] != "public-url" {
						t.Errorf("%s: %s is told DOMAIN but not PUBLIC_URL from the ConfigMap's public-url", overlay, o.GetName())
					}
				}
			}
		}
		if told < 2 {
			t.Errorf("%s: %d containers are told the domain, want the gateway and the control plane", overlay, told)
		}
		u, err := url.Parse(public)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() != domain {
			t.Errorf("%s: public-url %q is not http(s)://%s", overlay, public, domain)
		}
	}
}

// TestRunnerPortsPolicy checks who may reach which runner port: the
// gateways every port but the runner's control API (the pod template's
// "control" port), the pool manager that port only, other platform pods
// none. (The test API server runs no network plugin, so it reads the
// policy rather than sending packets.)
func TestRunnerPortsPolicy(t *testing.T) {
	tmpl, err := kube.LoadTemplate(filepath.Join("base", "runner", "runner-pod.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	control, err := kube.ControlPort(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	for _, overlay := range []string{"overlays/dev", "overlays/prod"} {
		var policy *networkingv1.NetworkPolicy
		for _, o := range build(t, overlay) {
			if o.GetKind() == "NetworkPolicy" && o.GetName() == "runners-ingress" {
				policy = &networkingv1.NetworkPolicy{}
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, policy); err != nil {
					t.Fatal(err)
				}
			}
		}
		if policy == nil {
			t.Fatalf("%s has no runners-ingress NetworkPolicy", overlay)
		}
		for _, c := range []struct {
			from string
			port int
			want bool
		}{
			{"gofastapi-gateway", 45000, true}, // an app's port, from the kernel's ephemeral range
			{"gofastapi-gateway", 8000, true},
			{"gofastapi-gateway", control, false},
			{"gofastapi-pool", control, true},
			{"gofastapi-pool", 45000, false},
			{"gofastapi-controlplane", 45000, false},
			{"gofastapi-controlplane", control, false},
		} {
			if got := ingressAllows(policy, c.from, c.port); got != c.want {
				t.Errorf("%s: %s may reach a runner's port %d: %v, want %v", overlay, c.from, c.port, got, c.want)
			}
		}
	}
}

// ingressAllows reports whether policy lets TCP from a pod in the gofastapi
// namespace named app (app.kubernetes.io/name) reach port.
func ingressAllows(policy *networkingv1.NetworkPolicy, app string, port int) bool {
	labels := map[string]string{"app.kubernetes.io/name": app}
	for _, rule := range policy.Spec.Ingress {
		peer := false
		for _, from := range rule.From {
			if from.PodSelector == nil {
				continue
			}
			sel, err := metav1.LabelSelectorAsSelector(from.PodSelector)
			if err == nil && sel.Matches(k8slabels.Set(labels)) {
				peer = true
			}
		}
		if !peer {
			continue
		}
		if len(rule.Ports) == 0 {
			return true
		}
		for _, p := range rule.Ports {
			if p.Port == nil || (p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP) {
				continue
			}
			lo, hi := p.Port.IntValue(), p.Port.IntValue()
			if p.EndPort != nil {
				hi = int(*p.EndPort)
			}
			if lo <= port && port <= hi {
				return true
			}
		}
	}
	return false
}

// TestRunnerControlKeyOnlyInPool: the key runner pods' control tokens
// derive from (Secret gofastapi-pool-control) reaches the pool manager and
// nothing else; the gateways, which face the internet, hold only the pool
// token.
func TestRunnerControlKeyOnlyInPool(t *testing.T) {
	for _, overlay := range []string{"overlays/dev", "overlays/prod"} {
		holders := map[string]bool{}
		for _, o := range build(t, overlay) {
			if refersToSecret(o.Object, "gofastapi-pool-control") {
				holders[o.GetKind()+"/"+o.GetName()] = true
			}
		}
		if len(holders) != 1 || !holders["Deployment/gofastapi-pool"] {
			t.Errorf("%s: Secret gofastapi-pool-control is referred to by %v, want Deployment/gofastapi-pool alone", overlay, holders)
		}
	}
}

// refersToSecret reports whether v names the Secret name anywhere a pod
// spec can (an env var's secretKeyRef, envFrom's secretRef, a secret volume).
func refersToSecret(v any, name string) bool {
	switch v := v.(type) {
	case map[string]any:
		for _, k := range []string{"secretKeyRef", "secretRef"} {
			if ref, ok := v[k].(map[string]any); ok && ref["name"] == name {
				return true
			}
		}
		if sec, ok := v["secret"].(map[string]any); ok && sec["secretName"] == name {
			return true
		}
		for _, e := range v {
			if refersToSecret(e, name) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if refersToSecret(e, name) {
				return true
			}
		}
	}
	return false
}
