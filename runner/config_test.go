package runner

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseFlags(t *testing.T) {
	got, err := parseFlags([]string{"--workdir", "/w", "--ready-timeout", "3s", "--control", "127.0.0.1:7000", "--start-priority", "0",
		"--app-memory", "1000", "--app-processes", "0", "--app-file-size", "2000", "--confine=false", "--app-disk", "0"})
	if err != nil {
		t.Fatal(err)
	}
	want := config{control: "127.0.0.1:7000", python: "/usr/bin/python3", workdir: "/w", readyTimeout: 3 * time.Second, depsKeep: 24 * time.Hour,
		limits: AppLimits{Memory: 1000, FileSize: 2000}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(config{})); diff != "" {
		t.Errorf("parseFlags (-want +got):\n%s", diff)
	}
	got, err = parseFlags([]string{"--workdir", "/w", "--zygote", "/z/zygote.sock"})
	if err != nil {
		t.Fatal(err)
	}
	want = config{control: "127.0.0.1:0", python: "/usr/bin/python3", workdir: "/w", readyTimeout: 10 * time.Second, zygote: "/z/zygote.sock",
		startPriority: 20 * time.Millisecond, depsKeep: 24 * time.Hour, confine: true, disk: defaultAppDisk,
		limits: AppLimits{Memory: defaultAppMemory, Processes: defaultAppProcesses, FileSize: defaultAppFileSize}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(config{})); diff != "" {
		t.Errorf("parseFlags with --zygote (-want +got):\n%s", diff)
	}
	for _, args := range [][]string{{"--bogus"}, {"--workdir", "/w", "extra"}, {"--ready-timeout", "soon"}, {"--start-priority", "soon"}} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q) succeeded, want an error", args)
		}
	}
}

func TestReadSecrets(t *testing.T) {
	tests := []struct {
		name    string
		stdin   string
		want    Secrets
		wantErr bool
	}{
		{name: "line", stdin: `{"redis_url":"redis://u:p@127.0.0.1:1/0"}` + "\nignored", want: Secrets{RedisURL: "redis://u:p@127.0.0.1:1/0"}},
		{name: "no newline", stdin: `{"redis_url":"redis://x"}`, want: Secrets{RedisURL: "redis://x"}},
		{name: "empty", stdin: "", wantErr: true},
		{name: "not json", stdin: "redis://x\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readSecrets(strings.NewReader(tt.stdin))
			if (err != nil) != tt.wantErr {
				t.Fatalf("readSecrets: err = %v, wantErr %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("readSecrets (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	ok := config{python: "/usr/bin/python3", workdir: "/w", readyTimeout: time.Second, redisURL: "redis://x"}
	if err := ok.validate(); err != nil {
		t.Errorf("validate(%+v) = %v", ok, err)
	}
	hashed := ok
	hashed.controlTokenSHA256 = strings.Repeat("0f", 32)
	if err := hashed.validate(); err != nil {
		t.Errorf("validate(%+v) = %v", hashed, err)
	}
	shared := ok
	shared.depsCache, shared.runAs, shared.depsKeep = "/deps", &RunAs{UID: 1000, GID: 1000}, time.Hour
	if err := shared.validate(); err != nil {
		t.Errorf("validate(%+v) = %v", shared, err)
	}
	bad := []func(*config){
		func(c *config) { c.workdir = "" },
		func(c *config) { c.python = "" },
		func(c *config) { c.readyTimeout = 0 },
		func(c *config) { c.redisURL = "" },
		func(c *config) { c.zygote = "zygote.sock" },
		func(c *config) { c.startPriority = -time.Millisecond },
		func(c *config) { c.limits.Memory = -1 },
		func(c *config) { c.limits.FileSize = -1 },
		func(c *config) { c.depsCache, c.runAs, c.depsKeep = "/deps", &RunAs{UID: 1000, GID: 1000}, 0 },
		func(c *config) { c.controlTokenSHA256 = "not-hex" },
		func(c *config) { c.controlTokenSHA256 = strings.Repeat("A", 64) }, // upper case
		func(c *config) { c.controlTokenSHA256 = strings.Repeat("a", 62) },
	}
	for i, mutate := range bad {
		c := ok
		mutate(&c)
		if err := c.validate(); err == nil {
			t.Errorf("case %d: validate(%+v) succeeded, want an error", i, c)
		}
	}
}

func TestControlDigest(t *testing.T) {
	sum := sha256.Sum256([]byte("tok"))
	for _, tt := range []struct {
		name, token, sum string
		want             []byte
	}{
		{name: "none"},
		{name: "token from the secrets", token: "tok", want: sum[:]},
		{name: "its hash from the flag", sum: hex.EncodeToString(sum[:]), want: sum[:]},
	} {
		got, err := controlDigest(tt.token, tt.sum)
		if err != nil || !bytes.Equal(got, tt.want) {
			t.Errorf("%s: controlDigest(%q, %q) = %x, %v; want %x", tt.name, tt.token, tt.sum, got, err, tt.want)
		}
	}
	if _, err := controlDigest("tok", hex.EncodeToString(sum[:])); err == nil {
		t.Error("controlDigest with both a token and a hash succeeded, want an error")
	}
}
