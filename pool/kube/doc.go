// Package kube is the pool backend that runs each runner as a Kubernetes
// pod, made from a pod template and watched through a shared informer.
//
// A runner pod carries the labels LabelPool (which pool it belongs to) and
// LabelState: "warm" while generic, "claimed" once given to an app. The
// claim itself is decided in memory by the pool (no API call); the runner
// takes one Specialize only, so of two managers claiming one pod (as in a
// split brain) the second gets Aborted (ErrTaken). Once the runner serves
// the app, Specialize records the claim on the pod in the background, with
// a patch that carries the resourceVersion the informer saw, so that no
// API write is on the cold start's path; a runner whose claim cannot be
// recorded is stopped. Released, reaped and crashed runners' pods are
// deleted, never reused.
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
