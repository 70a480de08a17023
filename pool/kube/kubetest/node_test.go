package kubetest

import "testing"

func TestExpand(t *testing.T) {
	env := map[string]string{"POD_IP": "127.1.0.7", "A": "x"}
	tests := map[string]string{
		"--control=$(POD_IP):9000": "--control=127.1.0.7:9000",
		"$(A)$(A)":                 "xx",
		"$(MISSING)":               "$(MISSING)", // the kubelet leaves unknown references as they are
		"$(unclosed":               "$(unclosed",
		"plain":                    "plain",
	}
	for in, want := range tests {
		if got := expand(in, env); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMapPaths(t *testing.T) {
	paths := map[string]string{"/work": "/tmp/p/work", "/usr/local/bin/gofastapi": "/tmp/test.bin", "/etc/gofastapi": "/tmp/p/secrets"}
	tests := map[string]string{
		"/usr/local/bin/gofastapi":                  "/tmp/test.bin",
		"--workdir=/work/runner":                    "--workdir=/tmp/p/work/runner",
		"--secrets-file=/etc/gofastapi/runner.json": "--secrets-file=/tmp/p/secrets/runner.json",
		"/workshop":                "/workshop", // a prefix of a name is not a parent directory
		"--control=127.1.0.7:9000": "--control=127.1.0.7:9000",
		"runner":                   "runner",
	}
	for in, want := range tests {
		if got := mapPaths(in, paths); got != want {
			t.Errorf("mapPaths(%q) = %q, want %q", in, got, want)
		}
	}
}
