package kube

// ControlToken lets the tests call a pod's control API as its pool does.
var ControlToken = controlToken
