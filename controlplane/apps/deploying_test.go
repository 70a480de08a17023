package apps

import "testing"

func TestDeployingCountsOverlappingDeploys(t *testing.T) {
	s := &Service{}
	if s.isDeploying("a") {
		t.Fatal("deploying before any deploy")
	}
	first := s.deployStarted("a")
	second := s.deployStarted("a")
	if !s.isDeploying("a") || s.isDeploying("b") {
		t.Fatal("a must be deploying, b not")
	}
	first()
	if !s.isDeploying("a") {
		t.Fatal("a deploy still runs: a must still be deploying")
	}
	second()
	if s.isDeploying("a") {
		t.Fatal("deploying after both deploys ended")
	}
}
