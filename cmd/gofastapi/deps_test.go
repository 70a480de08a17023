package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/redis/go-redis/v9"

	"github.com/gofastapi/gofastapi/controlplane/deps/depstest"
	"github.com/gofastapi/gofastapi/controlplane/embedded"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// testWheels are the index's packages: greet needs colorword; uses-anyio
// needs anyio, which the index has in a version of its own but the
// runners' Python has already; sneaky needs notallowed; native carries a
// compiled extension.
var testWheels = []depstest.Wheel{
	{Name: "greet", Version: "1.0", Requires: []string{"colorword"},
		Files: map[string]string{"greet/__init__.py": "from colorword import color\n\ndef hi(n):\n    return color('hi ' + n)\n"}},
	{Name: "greet", Version: "2.0", Requires: []string{"colorword"},
		Files: map[string]string{"greet/__init__.py": "def hi(n):\n    return 'v2'\n"}},
	{Name: "colorword", Version: "1.0", Files: map[string]string{"colorword.py": "def color(s):\n    return '<' + s + '>'\n"}},
	{Name: "uses-anyio", Version: "1.0", Requires: []string{"anyio"},
		Files: map[string]string{"uses_anyio/__init__.py": "import anyio\nFAKE = getattr(anyio, 'FAKE', False)\n"}},
	{Name: "anyio", Version: "99.0", Files: map[string]string{"anyio/__init__.py": "FAKE = True\n"}},
	{Name: "sneaky", Version: "1.0", Requires: []string{"notallowed"}, Files: map[string]string{"sneaky.py": "X = 1\n"}},
	{Name: "notallowed", Version: "1.0", Files: map[string]string{"notallowed.py": "X = 1\n"}},
	{Name: "native", Version: "1.0", Files: map[string]string{"native/__init__.py": "", "native/_speed.cpython-311-x86_64-linux-gnu.so": "\x7fELF not really"}},
}

const depsApp = `from fastapi import FastAPI
import greet
import uses_anyio

app = FastAPI()


@app.get("/")
def root():
    return {"msg": greet.hi("there"), "fake_anyio": uses_anyio.FAKE}
`

// deployFiles deploys files as app name of token's user and returns the
// stages' messages and packages, or the deploy's error.
func (p *platform) deployFiles(token, name string, files map[string]string) ([]string, []*v1.Package, error) {
	p.createApp(p.t, token, name)
	req := &v1.DeployRequest{IdOrName: name}
	for n, c := range files {
		req.Files = append(req.Files, &v1.File{Name: n, Content: []byte(c)})
	}
	s, err := p.as(token).apps.Deploy(context.Background(), connect.NewRequest(req))
	if err != nil {
		return nil, nil, err
	}
	var msgs []string
	var packages []*v1.Package
	for s.Receive() {
		msgs = append(msgs, s.Msg().GetMessage())
		if ps := s.Msg().GetPackages(); len(ps) > 0 {
			packages = ps
		}
	}
	return msgs, packages, s.Err()
}

func packagesString(ps []*v1.Package) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.GetName() + " " + p.GetVersion()
	}
	return strings.Join(parts, ", ")
}

// startDepsPlatform starts a platform (with extra flags) whose package
// index serves testWheels, on a Redis of the test's own, and returns a
// client of that Redis.
func startDepsPlatform(t *testing.T, extra ...string) (*platform, *depstest.Index, *redis.Client) {
	t.Helper()
	idx := depstest.StartIndex(t, testWheels...)
	rs, err := embedded.StartRedis(context.Background(), "redis-server")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Stop)
	p := startPlatform(t, t.TempDir(), t.TempDir(), append([]string{"--package-index", idx.URL, "--redis-url", rs.URL()}, extra...)...)
	rdb := redis.NewClient(mustParseRedisURL(t, rs.URL()))
	t.Cleanup(func() { rdb.Close() })
	return p, idx, rdb
}

// TestDependencies deploys apps that declare packages in requirements.txt,
// installed by pip from a package index, and checks what is refused.
func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	ctx := context.Background()
	p, idx, rdb := startDepsPlatform(t)
	admin, _ := p.signup(t, "ada", "ada's password")
	bob, _ := p.signup(t, "bob", "bob's password")

	// The defaults do not have the test's packages.
	_, _, err := p.deployFiles(bob, "early", map[string]string{"app.py": depsApp, "requirements.txt": "greet==1.0\n"})
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "requirements.txt:1:0: package greet is not on the platform's dependency allowlist") {
		t.Fatalf("deploy of a package not on the allowlist: %v", err)
	}
	if _, err := p.as(bob).admin.UpdateSettings(ctx, connect.NewRequest(&v1.UpdateSettingsRequest{AddPackages: []string{"greet"}})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("a user edited the dependency allowlist: %v", err)
	}
	res, err := p.as(admin).admin.UpdateSettings(ctx, connect.NewRequest(&v1.UpdateSettingsRequest{
		AddPackages: []string{"greet", "Colorword", "uses_anyio", "sneaky", "native"}}))
	if err != nil {
		t.Fatal(err)
	}
	if st := res.Msg.GetSettings(); !st.GetAllowedPackagesCustomized() || st.GetPackageIndex() != idx.URL {
		t.Errorf("settings after the edit: %v", st)
	}

	files := map[string]string{"app.py": depsApp, "requirements.txt": "# what the app needs\ngreet==1.0\nuses-anyio\n"}
	msgs, packages, err := p.deployFiles(bob, "deps1", files)
	if err != nil {
		t.Fatalf("deploy with dependencies: %v", err)
	}
	// anyio is the runners' own: the index's anyio 99.0 is left out.
	if got, want := packagesString(packages), "colorword 1.0, greet 1.0, uses-anyio 1.0"; got != want {
		t.Errorf("installed packages = %q, want %q (stages: %q)", got, want, msgs)
	}
	code, body := p.get("deps1", "/")
	if code != 200 || !strings.Contains(body, `"msg":"<hi there>"`) || !strings.Contains(body, `"fake_anyio":false`) {
		t.Fatalf("GET deps1 / = %d %s; want greet's greeting and the platform's anyio\n%s", code, body, p.logs.String())
	}

	// The same requirements, for another app of another user: installed
	// before, so the index is not asked again.
	hits := idx.Hits.Load()
	msgs, packages, err = p.deployFiles(admin, "deps2", map[string]string{"app.py": depsApp, "requirements.txt": "uses-anyio\ngreet==1.0\n"})
	if err != nil {
		t.Fatal(err)
	}
	if n := idx.Hits.Load() - hits; n != 0 || !strings.Contains(strings.Join(msgs, "\n"), "(installed before)") || len(packages) != 3 {
		t.Errorf("second deploy of the same requirements: %d index requests, stages %q, packages %v", n, msgs, packages)
	}
	if code, body := p.get("deps2", "/"); code != 200 || !strings.Contains(body, "<hi there>") {
		t.Errorf("GET deps2 / = %d %s", code, body)
	}
	// The cold starts (at the deploys' warm stage) record the
	// dependencies' phase: unpacked for the first app, on the host already
	// for the second (runners have users of their own here, so the host
	// shares them).
	coldStart := func(token, app string) *v1.ColdStart {
		t.Helper()
		res, err := p.as(token).apps.ListColdStarts(ctx, connect.NewRequest(&v1.ListColdStartsRequest{IdOrName: app, Limit: 1}))
		if err != nil || len(res.Msg.GetColdStarts()) != 1 {
			t.Fatalf("cold starts of %s: %v, %v", app, res, err)
		}
		return res.Msg.GetColdStarts()[0]
	}
	if cs := coldStart(bob, "deps1"); cs.GetDepsMicros() <= 0 || cs.GetDepsCached() {
		t.Errorf("deps1's cold start: dependencies %d us, cached %v; want unpacked", cs.GetDepsMicros(), cs.GetDepsCached())
	}
	if cs := coldStart(admin, "deps2"); !cs.GetDepsCached() {
		t.Errorf("deps2's cold start: dependencies %d us, cached %v; want on the host already", cs.GetDepsMicros(), cs.GetDepsCached())
	}
	if out := p.mustCLIAs(admin, "coldstarts", "deps2"); !strings.Contains(out, "DEPS") || !strings.Contains(out, "on host") {
		t.Errorf("gofastapi coldstarts deps2:\n%s", out)
	}
	keys, err := rdb.Keys(ctx, "deps:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("deps keys in Redis = %v, %v; want one archive shared by both apps", keys, err)
	}

	// The version history lists each version's packages.
	vs, err := p.as(bob).apps.ListVersions(ctx, connect.NewRequest(&v1.ListVersionsRequest{IdOrName: "deps1"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := packagesString(vs.Msg.GetVersions()[0].GetPackages()); got != "colorword 1.0, greet 1.0, uses-anyio 1.0" {
		t.Errorf("version's packages = %q", got)
	}
	if out := p.mustCLIAs(bob, "versions", "deps1"); !strings.Contains(out, "colorword==1.0 greet==1.0 uses-anyio==1.0") {
		t.Errorf("gofastapi versions deps1:\n%s", out)
	}

	refused := []struct {
		name, requirements, want string
	}{
		{"an option", "greet\n-e git+https://example.invalid/x.git\n", "requirements.txt:2:0: \"-e git+https://example.invalid/x.git\": options are not allowed"},
		{"a URL", "greet @ https://example.invalid/greet.whl\n", "requirements.txt:1:0: \"greet @ https://example.invalid/greet.whl\": URLs and paths are not allowed"},
		{"a package listed twice", "greet\nGreet==1.0\n", "requirements.txt:2:0: greet is listed twice (first on line 1)"},
		{"a version the index has not got", "colorword\ngreet==3.0\n", "requirements.txt:2:0: pip: Could not find a version that satisfies the requirement greet==3.0"},
		{"a dependency not on the allowlist", "sneaky\n", "package notallowed 1.0, which your requirements need, is not on the platform's dependency allowlist"},
		{"a native extension", "native\n", "native/_speed.cpython-311-x86_64-linux-gnu.so is a native extension; only pure-Python packages are allowed"},
		{"a package the app does not declare", "colorword\n", "app.py:2:1: import of 'greet' is not allowed"},
	}
	for _, tt := range refused {
		_, _, err := p.deployFiles(bob, "deps1", map[string]string{"app.py": depsApp, "requirements.txt": tt.requirements})
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: deploy = %v; want InvalidArgument saying %q", tt.name, err, tt.want)
		}
	}
	// The refused deploys left the app as it was.
	if code, body := p.get("deps1", "/"); code != 200 || !strings.Contains(body, "<hi there>") {
		t.Errorf("GET deps1 / after refused deploys = %d %s", code, body)
	}

	// Redis is a cache: with everything in it gone, the platform puts the
	// dependency archive back from its database at the next request.
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	msgs, _, err = p.deployFiles(bob, "deps3", files)
	if err != nil || !strings.Contains(strings.Join(msgs, "\n"), "(installed before)") {
		t.Fatalf("deploy after Redis lost the archive: %v, %q", err, msgs)
	}
	if n, err := rdb.Exists(ctx, keys[0]).Result(); err != nil || n != 1 {
		t.Errorf("the archive is not back in Redis: %d, %v", n, err)
	}
	if code, body := p.get("deps3", "/"); code != 200 || !strings.Contains(body, "<hi there>") {
		t.Errorf("GET deps3 / = %d %s", code, body)
	}

	// Deleting apps frees the archive once no version names it: the
	// next app with the same requirements installs them again.
	for _, d := range []struct{ token, app string }{{bob, "deps1"}, {admin, "deps2"}, {bob, "deps3"}} {
		if n, err := rdb.Exists(ctx, keys[0]).Result(); err != nil || n != 1 {
			t.Fatalf("the archive went while %s still used it: %d, %v", d.app, n, err)
		}
		if _, err := p.as(d.token).apps.DeleteApp(ctx, connect.NewRequest(&v1.DeleteAppRequest{IdOrName: d.app})); err != nil {
			t.Fatalf("delete %s: %v\n%s", d.app, err, p.logs)
		}
	}
	if n, err := rdb.Exists(ctx, keys[0]).Result(); err != nil || n != 0 {
		t.Errorf("the archive is still in Redis after its last app was deleted: %d, %v", n, err)
	}
	hits = idx.Hits.Load()
	msgs, _, err = p.deployFiles(bob, "deps4", files)
	if err != nil || strings.Contains(strings.Join(msgs, "\n"), "(installed before)") || idx.Hits.Load() == hits {
		t.Errorf("deploy after the archive was freed: %v, %q, %d index requests; want a new install", err, msgs, idx.Hits.Load()-hits)
	}
}

// TestDependenciesWithoutIndex: a platform with no package index refuses
// requirements.txt, saying why, and an app without one deploys as ever.
func TestDependenciesWithoutIndex(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	p := startPlatform(t, t.TempDir(), t.TempDir())
	token, _ := p.signup(t, "ada", "ada's password")
	_, _, err := p.deployFiles(token, "plain", map[string]string{"app.py": fmt.Sprintf(helloApp, "plain"), "requirements.txt": "six\n"})
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "requirements.txt: this platform has no package index") {
		t.Errorf("deploy with requirements.txt and no index: %v", err)
	}
	if _, _, err := p.deployFiles(token, "plain", map[string]string{"app.py": fmt.Sprintf(helloApp, "plain")}); err != nil {
		t.Errorf("deploy without requirements.txt: %v", err)
	}

	// The admin's CLI edits the dependency allowlist and shows the index.
	p.mustCLI("login", "--username", "ada", "--password", "ada's password")
	out := p.mustCLI("admin", "settings", "--allow-packages", "greet,colorword", "--disallow-packages", "six")
	for _, want := range []string{"allowed packages: python-dateutil pytz", "greet colorword (set by an admin)", "package index:   none (start the platform with --package-index"} {
		if !strings.Contains(out, want) {
			t.Errorf("admin settings output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, " six ") {
		t.Errorf("six is still allowed:\n%s", out)
	}
	if out := p.mustFail("admin", "settings", "--allow-packages", "greet==1.0"); !strings.Contains(out, `"greet==1.0" is not a package name`) {
		t.Errorf("a bad package name: %s", out)
	}
}

// TestDependenciesRebuiltFromTheDatabase runs runners without users of
// their own (--runner-uids off), so each unpacks its app's dependencies
// itself, fetched from Redis; with Redis emptied, the route of an app not
// started yet is rebuilt from the platform database, its dependency
// archive with it.
func TestDependenciesRebuiltFromTheDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	ctx := context.Background()
	p, _, rdb := startDepsPlatform(t, "--runner-uids", "off")
	admin, _ := p.signup(t, "ada", "ada's password")
	if _, err := p.as(admin).admin.UpdateSettings(ctx, connect.NewRequest(&v1.UpdateSettingsRequest{
		AllowedPackages: &v1.PackageList{Packages: []string{"greet", "colorword", "uses-anyio"}}})); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"app.py": depsApp, "requirements.txt": "greet==1.0\nuses-anyio\n"}
	for _, name := range []string{"first", "second"} {
		if _, _, err := p.deployFiles(admin, name, files); err != nil {
			t.Fatalf("deploy %s: %v", name, err)
		}
	}
	if code, body := p.get("first", "/"); code != 200 || !strings.Contains(body, "<hi there>") {
		t.Fatalf("GET first / = %d %s", code, body)
	}
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if code, body := p.get("second", "/"); code != 200 || !strings.Contains(body, "<hi there>") || !strings.Contains(body, `"fake_anyio":false`) {
		t.Fatalf("GET second / after Redis was emptied = %d %s\n%s", code, body, p.logs.String())
	}
}
