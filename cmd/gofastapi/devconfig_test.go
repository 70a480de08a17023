package main

import (
	"io"
	"net"
	"strings"
	"testing"
)

func TestDevConfigMongoUsers(t *testing.T) {
	const uri = "mongodb://admin:pw@127.0.0.1:27017/?authSource=admin"
	tests := []struct {
		name      string
		args      []string
		env       string // GOFASTAPI_DB_MONGO_USERS
		wantErr   string // "" for none
		wantUsers bool
	}{
		{name: "off by default", args: nil},
		{name: "flag with a URI", args: []string{"--mongo-uri", uri, "--db-mongo-users"}, wantUsers: true},
		{name: "environment with a URI", args: []string{"--mongo-uri", uri}, env: "true", wantUsers: true},
		{name: "the flag overrides the environment", args: []string{"--mongo-uri", uri, "--db-mongo-users=false"}, env: "1"},
		{name: "without --mongo-uri", args: []string{"--db-mongo-users"}, wantErr: "--db-mongo-users needs --mongo-uri"},
		{name: "environment without --mongo-uri", env: "true", wantErr: "--db-mongo-users needs --mongo-uri"},
		{name: "a URI without credentials", args: []string{"--mongo-uri", "mongodb://127.0.0.1:27017/", "--db-mongo-users"}, wantErr: "credentials of a MongoDB user allowed to manage users"},
		{name: "a bad environment value", env: "maybe", wantErr: `GOFASTAPI_DB_MONGO_USERS="maybe"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOFASTAPI_DB_MONGO_USERS", tc.env)
			c := parseCase(t, tc.args, tc.wantErr)
			if c == nil {
				return
			}
			if c.DBMongoUsers != tc.wantUsers {
				t.Errorf("DBMongoUsers = %v, want %v", c.DBMongoUsers, tc.wantUsers)
			}
		})
	}
}

// TestDevConfigPublicURL checks the app URLs the platform hands out, from
// the gateway's own address or from --public-url, and what a bad
// --public-url is told.
func TestDevConfigPublicURL(t *testing.T) {
	listen := func(port int) net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port} }
	tests := []struct {
		name    string
		args    []string
		env     string // PUBLIC_URL
		port    int    // the gateway's listen port
		want    string // app shop's URL
		wantErr string
	}{
		{name: "the gateway's port", port: 8080, want: "http://shop.localhost:8080"},
		{name: "the gateway on 80", port: 80, want: "http://shop.localhost"},
		{name: "TLS in front", args: []string{"--domain", "apps.example.com", "--public-url", "https://apps.example.com"}, port: 8080, want: "https://shop.apps.example.com"},
		{name: "the scheme's own port", args: []string{"--domain", "apps.example.com", "--public-url", "https://apps.example.com:443/"}, port: 8080, want: "https://shop.apps.example.com"},
		{name: "a port of its own", args: []string{"--domain", "apps.example.com", "--public-url", "http://APPS.example.com:9000"}, port: 8080, want: "http://shop.apps.example.com:9000"},
		{name: "from the environment", args: []string{"--domain", "apps.example.com"}, env: "https://apps.example.com", port: 8081, want: "https://shop.apps.example.com"},
		{name: "another host", args: []string{"--domain", "apps.example.com", "--public-url", "https://example.com"}, wantErr: `its host must be --domain "apps.example.com"`},
		{name: "another scheme", args: []string{"--public-url", "ftp://localhost"}, wantErr: "want http://localhost or https://localhost"},
		{name: "no scheme", args: []string{"--public-url", "localhost:8080"}, wantErr: "want http://localhost or https://localhost"},
		{name: "a path", args: []string{"--public-url", "https://localhost/apps"}, wantErr: "want only a scheme, the domain and a port"},
		{name: "a bad port", args: []string{"--public-url", "https://localhost:99999"}, wantErr: `port "99999" is not 1-65535`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PUBLIC_URL", tc.env)
			c := parseCase(t, tc.args, tc.wantErr)
			if c == nil {
				return
			}
			if got := c.appURL(listen(tc.port))("shop"); got != tc.want {
				t.Errorf("app URL %q, want %q", got, tc.want)
			}
		})
	}
}

// parseCase parses the dev flags args (with MONGO_URI empty, runners as
// the platform's user and a data directory of the test's own): with
// wantErr, it checks the error says it and returns nil.
func parseCase(t *testing.T, args []string, wantErr string) *devConfig {
	t.Helper()
	t.Setenv("MONGO_URI", "")
	c, err := parseDevConfig(append([]string{"--runner-uids", "off", "--data", t.TempDir()}, args...), io.Discard)
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("parseDevConfig = %v, want an error containing %q", err, wantErr)
		}
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSharedUserRisks: the warning for apps sharing the platform's user
// names what this kernel and architecture leave open, and no more.
func TestSharedUserRisks(t *testing.T) {
	for _, tt := range []struct {
		abi                 int
		noUnixSockets, root bool
		want, not           []string
	}{
		{abi: 0, noUnixSockets: true, want: []string{"each process by itself", "no Landlock", "its key", "environment through /proc", "signal"}, not: []string{"ABI", "/etc/shadow", "zygote"}},
		{abi: 3, noUnixSockets: true, want: []string{"older than ABI 4", "TCP ports", "signal this process"}, not: []string{"its key", "/proc", "zygote"}},
		{abi: 5, noUnixSockets: true, want: []string{"older than ABI 6", "signal this process"}, not: []string{"TCP", "its key", "/proc", "zygote"}},
		{abi: 7, noUnixSockets: true, root: true, want: []string{"each process by itself", "without capabilities", "/etc/shadow", "--runner-uids auto"}, not: []string{"signal", "TCP", "its key", "/proc", "zygote", "run as root"}},
		{abi: 7, noUnixSockets: true, want: []string{"each process by itself", "fill the runners' disk", "run as root"}, not: []string{"signal", "TCP", "its key", "/proc", "zygote", "/etc/shadow", "--runner-uids auto"}},
		{abi: 7, want: []string{"cannot forbid themselves Unix sockets", "zygote", "outside any confinement"}, not: []string{"signal", "its key"}},
	} {
		got := sharedUserRisks(tt.abi, tt.noUnixSockets, tt.root)
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("sharedUserRisks(%d, %v, %v) = %q; want it to say %q", tt.abi, tt.noUnixSockets, tt.root, got, w)
			}
		}
		for _, n := range tt.not {
			if strings.Contains(got, n) {
				t.Errorf("sharedUserRisks(%d, %v, %v) = %q; it should not say %q", tt.abi, tt.noUnixSockets, tt.root, got, n)
			}
		}
	}
}
