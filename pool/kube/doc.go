// Package kube is the pool backend that runs each runner as a Kubernetes
// pod, made from a pod template and watched through a shared informer.
//
// A runner pod carries the labels LabelPool (which pool it belongs to) and
// LabelState: "warm" while generic, "claimed" once given to an app. The
// claim itself is decided in memory by the pool (no API call); Specialize
// records it on the pod with a patch that carries the resourceVersion the
// informer saw, so of two managers claiming one pod the second loses,
// overlapped with the runner's own Specialize call so that the API write
// adds no latency. Released, reaped and crashed runners' pods are deleted,
// never reused.
//
// With Config.ControlKey, each pod's control API takes calls only with the
// pod's own token, an HMAC of a random nonce (the AnnControlNonce
// annotation) with the key; the pod is given only the token's SHA-256.
//
// One pool manager is active at a time (RunLeader: a coordination.k8s.io
// Lease through client-go's leaderelection). A new leader rebuilds its
// state from the pods' labels and annotations (Backend.Existing, used by
// pool.New): warm pods join the warm set, specialized pods keep serving
// their app. A leader that stops calls Detach first, which leaves the pods
// to its successor.
package kube
