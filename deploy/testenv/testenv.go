// Package testenv runs, from Go tests, the scripts beside it that build the
// test environment's binaries once and print where they are (k8s-bin.sh for
// etcd and kube-apiserver, ferretdb-bin.sh for FerretDB with real users).
// Its users are the test-support packages pool/kube/kubetest and
// controlplane/mongousers/mongotest.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Run runs deploy/testenv/script with args, found above the working
// directory (a test runs in its package's directory), its stderr going to
// the test's, and returns what it printed on stdout, trimmed.
func Run(script string, args ...string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(filepath.Join(root, "deploy", "testenv", script), args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("deploy/testenv/%s %s: %w", script, strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

// repoRoot is the nearest directory above the working directory with a
// go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testenv: no go.mod above the working directory")
		}
		dir = parent
	}
}
