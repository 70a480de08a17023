package kube

import "errors"

var (
	// ErrClosed is returned by Start after Close.
	ErrClosed = errors.New("kube: backend closed")
	// ErrTaken means another pool manager recorded a claim on the pod first.
	ErrTaken = errors.New("kube: runner pod was claimed by another pool manager")
)
