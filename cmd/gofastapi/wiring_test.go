package main

import (
	"testing"

	"github.com/gofastapi/gofastapi/controlplane/publish"
	"github.com/gofastapi/gofastapi/gateway"
)

// TestDomainChangeMessages: the control plane announces a custom domain's
// change with the string the gateway takes for it (both travel on the
// routes channel, which dev wires to Gateway.Invalidate).
func TestDomainChangeMessages(t *testing.T) {
	if got, want := publish.DomainKey("www.example.com"), gateway.DomainChanged("www.example.com"); got != want {
		t.Errorf("the control plane announces %q, the gateway expects %q", got, want)
	}
}
