package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.mongodb.org/mongo-driver/v2/bson"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// envApp answers with a variable of its environment and the message %s.
const envApp = `import os
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

app = FastAPI()

@app.get("/")
def root():
    print("root was called", flush=True)
    return {"message": "%s"}

@app.get("/env/{name}")
def env(name: str):
    return {"value": os.environ.get(name)}

@app.get("/page", response_class=HTMLResponse)
def page():
    return "<!doctype html><html><head><title>page</title></head><body>hi</body></html>"
`

func files(kv ...string) []*v1.File {
	var out []*v1.File
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, &v1.File{Name: kv[i], Content: []byte(kv[i+1])})
	}
	return out
}

// deployFiles deploys files to app name and returns the last message.
func deployFiles(t *testing.T, c apiClients, name string, fs []*v1.File) (*v1.DeployResponse, error) {
	t.Helper()
	s, err := c.apps.Deploy(context.Background(), connect.NewRequest(&v1.DeployRequest{IdOrName: name, Files: fs}))
	if err != nil {
		return nil, err
	}
	var last *v1.DeployResponse
	for s.Receive() {
		last = s.Msg()
	}
	return last, s.Err()
}

func wantCode(t *testing.T, what string, err error, code connect.Code, msg ...string) {
	t.Helper()
	if connect.CodeOf(err) != code {
		t.Fatalf("%s: got %v, want %s", what, err, code)
	}
	for _, m := range msg {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("%s: error %q does not say %q", what, err, m)
		}
	}
}

// TestAppLifecycle drives metadata, drafts, versions and rollback, clone,
// env and secrets, OpenGraph and events through the real platform.
func TestAppLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	data := t.TempDir()
	p := startPlatform(t, data, t.TempDir())
	tok, _ := p.signup(t, "lena", "lena password")
	c := p.as(tok)
	ctx := context.Background()

	// Metadata: slugs are checked, reserved names refused.
	for _, bad := range []string{"www", "api", "mongo-lena", "Bad_Name", "-x", strings.Repeat("a", 41)} {
		_, err := c.apps.CreateApp(ctx, connect.NewRequest(&v1.CreateAppRequest{Name: bad}))
		wantCode(t, "create "+bad, err, connect.CodeInvalidArgument, bad)
	}
	created, err := c.apps.CreateApp(ctx, connect.NewRequest(&v1.CreateAppRequest{Name: "life", Description: "first", Notes: "n"}))
	if err != nil {
		t.Fatal(err)
	}
	if a := created.Msg.GetApp(); a.GetStatus() != v1.AppStatus_APP_STATUS_NOT_DEPLOYED || a.GetMode() != v1.AppMode_APP_MODE_SINGLE ||
		len(created.Msg.GetDraft().GetFiles()) != 1 || created.Msg.GetDraft().GetFiles()[0].GetName() != "app.py" {
		t.Fatalf("new app: %v, draft %v; want not deployed, single, a starter app.py draft", a, created.Msg.GetDraft())
	}

	// Drafts: saved even when invalid, with the problems; status by hash.
	saved, err := c.apps.SaveDraft(ctx, connect.NewRequest(&v1.SaveDraftRequest{IdOrName: "life", Files: files("app.py", "app = 1\ndef f(:\n")}))
	if err != nil {
		t.Fatal(err)
	}
	if pr := saved.Msg.GetProblems(); len(pr) != 1 || pr[0].GetFile() != "app.py" || pr[0].GetLine() != 2 {
		t.Fatalf("SaveDraft problems = %v, want one at app.py:2", pr)
	}
	if _, err := deployFiles(t, c, "life", nil); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("deploying an invalid draft: %v, want InvalidArgument", err)
	}
	if _, err := c.apps.SaveDraft(ctx, connect.NewRequest(&v1.SaveDraftRequest{IdOrName: "life", Files: files("app.py", fmt.Sprintf(envApp, "v1"))})); err != nil {
		t.Fatal(err)
	}
	last, err := deployFiles(t, c, "life", nil) // the saved draft
	if err != nil {
		t.Fatalf("deploy draft: %v", err)
	}
	v1hash := last.GetVersion()
	got, err := c.apps.GetApp(ctx, connect.NewRequest(&v1.GetAppRequest{IdOrName: "life"}))
	if err != nil {
		t.Fatal(err)
	}
	if got.Msg.GetApp().GetStatus() != v1.AppStatus_APP_STATUS_UP_TO_DATE || got.Msg.GetDeployed().GetHash() != v1hash {
		t.Fatalf("after deploying the draft: status %v, deployed %v", got.Msg.GetApp().GetStatus(), got.Msg.GetDeployed().GetHash())
	}
	if code, body := p.get("life", "/"); code != 200 || !strings.Contains(body, `"v1"`) {
		t.Fatalf("GET life/ = %d %s", code, body)
	}
	if _, err := c.apps.SaveDraft(ctx, connect.NewRequest(&v1.SaveDraftRequest{IdOrName: "life", Files: files("app.py", fmt.Sprintf(envApp, "draft"))})); err != nil {
		t.Fatal(err)
	}
	got, _ = c.apps.GetApp(ctx, connect.NewRequest(&v1.GetAppRequest{IdOrName: "life"}))
	if got.Msg.GetApp().GetStatus() != v1.AppStatus_APP_STATUS_CHANGES_NOT_DEPLOYED {
		t.Fatalf("status after saving a changed draft: %v", got.Msg.GetApp().GetStatus())
	}
	if code, body := p.get("life", "/"); !strings.Contains(body, `"v1"`) {
		t.Fatalf("a saved draft must not go live: GET = %d %s", code, body)
	}

	// Versions: deploys are content-addressed; identical content is a no-op.
	last, err = deployFiles(t, c, "life", files("app.py", fmt.Sprintf(envApp, "v2")))
	if err != nil {
		t.Fatal(err)
	}
	v2hash := last.GetVersion()
	last, err = deployFiles(t, c, "life", files("app.py", fmt.Sprintf(envApp, "v3")))
	if err != nil {
		t.Fatal(err)
	}
	v3hash := last.GetVersion()
	last, err = deployFiles(t, c, "life", files("app.py", fmt.Sprintf(envApp, "v3")))
	if err != nil || !last.GetUnchanged() || last.GetVersion() != v3hash {
		t.Fatalf("redeploying identical files: %v %v, want unchanged %s", last, err, v3hash)
	}
	vs, err := c.apps.ListVersions(ctx, connect.NewRequest(&v1.ListVersionsRequest{IdOrName: "life"}))
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, v := range vs.Msg.GetVersions() {
		order = append(order, v.GetVersion())
		if len(v.GetFiles()) != 1 || v.GetFiles()[0].GetName() != "app.py" || v.GetCreatedAt() == nil {
			t.Errorf("version %s: files %v, time %v", v.GetVersion(), v.GetFiles(), v.GetCreatedAt())
		}
	}
	if want := []string{v3hash, v2hash, v1hash}; fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("versions %v, want newest first %v", order, want)
	}
	if !vs.Msg.GetVersions()[0].GetCurrent() {
		t.Error("the newest version is not marked current")
	}
	gv, err := c.apps.GetVersion(ctx, connect.NewRequest(&v1.GetVersionRequest{IdOrName: "life", Version: v2hash[:8]}))
	if err != nil || !strings.Contains(string(gv.Msg.GetFiles()[0].GetContent()), `"v2"`) {
		t.Fatalf("GetVersion by prefix: %v %v", gv, err)
	}
	_, err = c.apps.GetVersion(ctx, connect.NewRequest(&v1.GetVersionRequest{IdOrName: "life", Version: "zz"}))
	wantCode(t, "GetVersion bad prefix", err, connect.CodeInvalidArgument, "6 hex digits")

	// Rollback: the default is the version before; no rebuild, next request served by it.
	rb, err := c.apps.Rollback(ctx, connect.NewRequest(&v1.RollbackRequest{IdOrName: "life"}))
	if err != nil || rb.Msg.GetVersion() != v2hash || rb.Msg.GetPrevious() != v3hash {
		t.Fatalf("Rollback = %v, %v; want %s from %s", rb, err, v2hash, v3hash)
	}
	p.waitGet("life", "/", 200, `"v2"`)
	if _, err := c.apps.Rollback(ctx, connect.NewRequest(&v1.RollbackRequest{IdOrName: "life", Version: v1hash})); err != nil {
		t.Fatal(err)
	}
	p.waitGet("life", "/", 200, `"v1"`)
	_, err = c.apps.Rollback(ctx, connect.NewRequest(&v1.RollbackRequest{IdOrName: "life", Version: v1hash}))
	wantCode(t, "rollback to the current version", err, connect.CodeFailedPrecondition, "already")

	// Env and secrets: checked names, reserved names refused, restart
	// with new values and no new version, secrets sealed at rest.
	for _, bad := range []string{"lower", "1X", "PLATFORM_MONGO_URI", "GOFASTAPI_X", "PATH", "PYTHONPATH"} {
		_, err := c.apps.SetEnv(ctx, connect.NewRequest(&v1.SetEnvRequest{IdOrName: "life", Vars: []*v1.EnvAssignment{{Name: bad, Value: "x"}}}))
		wantCode(t, "SetEnv "+bad, err, connect.CodeInvalidArgument, bad)
	}
	const secretValue = "s3cr3t-value-4711"
	set, err := c.apps.SetEnv(ctx, connect.NewRequest(&v1.SetEnvRequest{IdOrName: "life", Vars: []*v1.EnvAssignment{
		{Name: "GREETING", Value: "hi"}, {Name: "API_TOKEN", Value: secretValue, Secret: true}}}))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range set.Msg.GetVars() {
		if v.GetName() == "API_TOKEN" && (v.GetValue() != "" || !v.GetSet() || !v.GetSecret()) {
			t.Errorf("secret as returned: %v; want no value, set", v)
		}
	}
	p.waitGet("life", "/env/API_TOKEN", 200, secretValue)
	if _, body := p.get("life", "/env/GREETING"); !strings.Contains(body, `"hi"`) {
		t.Fatalf("the app does not see GREETING: %s", body)
	}
	if _, err := c.apps.SetEnv(ctx, connect.NewRequest(&v1.SetEnvRequest{IdOrName: "life", Vars: []*v1.EnvAssignment{{Name: "GREETING", Value: "hello again"}}})); err != nil {
		t.Fatal(err)
	}
	p.waitGet("life", "/env/GREETING", 200, `"hello again"`)
	if vs2, _ := c.apps.ListVersions(ctx, connect.NewRequest(&v1.ListVersionsRequest{IdOrName: "life"})); len(vs2.Msg.GetVersions()) != 3 {
		t.Errorf("an env change made a version: %d versions", len(vs2.Msg.GetVersions()))
	}
	assertSealedAtRest(t, data, secretValue)

	// Clone: a new slug, env names copied, secret values not.
	cl, err := c.apps.CloneApp(ctx, connect.NewRequest(&v1.CloneAppRequest{IdOrName: "life", NewName: "life-copy", Deploy: true}))
	if err != nil {
		t.Fatal(err)
	}
	if cl.Msg.GetApp().GetUrl() == "" {
		t.Fatal("the clone was not deployed")
	}
	env, _ := c.apps.ListEnv(ctx, connect.NewRequest(&v1.ListEnvRequest{IdOrName: "life-copy"}))
	gotEnv := map[string]*v1.EnvVar{}
	for _, v := range env.Msg.GetVars() {
		gotEnv[v.GetName()] = v
	}
	if gotEnv["GREETING"].GetValue() != "hello again" || gotEnv["API_TOKEN"] == nil || gotEnv["API_TOKEN"].GetSet() {
		t.Fatalf("clone env = %v: want GREETING copied, API_TOKEN named but not set", env.Msg.GetVars())
	}
	if _, body := p.get("life-copy", "/"); !strings.Contains(body, `"v1"`) {
		t.Fatalf("the clone serves %s, want the deployed v1", body)
	}
	if _, body := p.get("life-copy", "/env/API_TOKEN"); !strings.Contains(body, "null") {
		t.Fatalf("the clone sees the secret: %s", body)
	}

	// OpenGraph: HTML pages get og: tags from name and description.
	if _, err := c.apps.UpdateApp(ctx, connect.NewRequest(&v1.UpdateAppRequest{IdOrName: "life", Description: ptr("A <lively> app")})); err != nil {
		t.Fatal(err)
	}
	body := p.waitGet("life", "/page", 200, `content="A &lt;lively&gt; app"`)
	wantContains(t, "page", body, `<meta property="og:title" content="life">`, `<meta property="og:description" content="A &lt;lively&gt; app">`,
		`<meta property="og:url" content="http://life.localhost:`+p.port+`/page">`)
	// A link-preview crawler that gets the app's JSON gets a page of the
	// tags instead; a browser gets the JSON.
	preview := func(userAgent string) (string, string) {
		t.Helper()
		_, hdr, body := p.request("life.localhost", "/", http.Header{"User-Agent": {userAgent}})
		return hdr.Get("Content-Type"), body
	}
	ct, body := preview("Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)")
	wantContains(t, "the preview page", ct+" "+body, "text/html", `<meta property="og:title" content="life">`,
		`<meta property="og:url" content="http://life.localhost:`+p.port+`/">`, "<title>life</title>")
	if ct, body := preview("Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"); ct != "application/json" || !strings.Contains(body, `"v1"`) {
		t.Errorf("a browser got %s %s, want the app's JSON", ct, body)
	}

	// Rename: the URL moves.
	if _, err := c.apps.UpdateApp(ctx, connect.NewRequest(&v1.UpdateAppRequest{IdOrName: "life", Name: ptr("lively")})); err != nil {
		t.Fatal(err)
	}
	p.waitGet("life", "/", 404, "")
	p.waitGet("lively", "/", 200, `"v1"`)
	_, err = c.apps.UpdateApp(ctx, connect.NewRequest(&v1.UpdateAppRequest{IdOrName: "lively", Name: ptr("life-copy")}))
	wantCode(t, "rename onto another app", err, connect.CodeAlreadyExists)

	// Events: deployed, cold started with phases, rolled back, env changed.
	ev, err := c.apps.WatchEvents(ctx, connect.NewRequest(&v1.WatchEventsRequest{IdOrName: "lively", Limit: 100}))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[v1.EventKind]int{}
	for ev.Receive() {
		e := ev.Msg().GetEvent()
		kinds[e.GetKind()]++
		if e.GetKind() == v1.EventKind_EVENT_KIND_COLD_STARTED && e.GetColdStart().GetLoadMicros() <= 0 {
			t.Errorf("cold start event without phases: %v", e)
		}
	}
	if ev.Err() != nil {
		t.Fatal(ev.Err())
	}
	for _, k := range []v1.EventKind{v1.EventKind_EVENT_KIND_DEPLOYED, v1.EventKind_EVENT_KIND_COLD_STARTED,
		v1.EventKind_EVENT_KIND_ROLLED_BACK, v1.EventKind_EVENT_KIND_ENV_CHANGED} {
		if kinds[k] == 0 {
			t.Errorf("no %s event; got %v", k, kinds)
		}
	}
}

// waitGet requests path of app slug until it answers code with a body
// containing want, and returns that body. A change made through the API
// (rollback, env, rename, description) reaches the gateway over Redis
// pub/sub, so the request right after the RPC may still see the old route.
func (p *platform) waitGet(slug, path string, code int, want string) string {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, body := p.get(slug, path)
		if got == code && strings.Contains(body, want) {
			return body
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("GET %s%s = %d %s; want %d with %q", slug, path, got, body, code, want)
		}
		time.Sleep(20 * time.Millisecond) // polling for a change in flight, not for readiness
	}
}

// assertSealedAtRest reads the platform database directly and checks that
// the secret's value is stored nowhere in clear.
func assertSealedAtRest(t *testing.T, data, secret string) {
	t.Helper()
	var doc bson.M
	if err := platformDB(t, data).Collection("apps").FindOne(context.Background(), bson.M{"name": "life"}).Decode(&doc); err != nil {
		t.Fatalf("read the app document: %v", err)
	}
	raw, _ := bson.Marshal(doc)
	if strings.Contains(string(raw), secret) {
		t.Fatal("the secret's value is stored in clear")
	}
	if !strings.Contains(fmt.Sprint(doc["env"]), "API_TOKEN") {
		t.Fatalf("the app document has no API_TOKEN entry: %v", doc["env"])
	}
}

// TestMultiFileApps deploys packages with relative imports and checks the
// limits and the presets.
func TestMultiFileApps(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	p := startPlatform(t, t.TempDir(), t.TempDir())
	tok, _ := p.signup(t, "mia", "mia password")
	c := p.as(tok)
	ctx := context.Background()

	p.createApp(t, tok, "multi")
	_, err := deployFiles(t, c, "multi", files(
		"app.py", "from fastapi import FastAPI\nfrom helpers import shout\nfrom shop.routes import router\napp = FastAPI()\napp.include_router(router)\n@app.get('/')\ndef root():\n    return {'m': shout('hi')}\n",
		"helpers.py", "def shout(s):\n    return s.upper()\n",
		"shop/__init__.py", "",
		"shop/routes.py", "from fastapi import APIRouter\nfrom .models import price\nfrom . import models\nrouter = APIRouter()\n@router.get('/price')\ndef get_price():\n    return {'price': price(2), 'unit': models.UNIT}\n",
		"shop/models.py", "UNIT = 'EUR'\ndef price(n):\n    return n * 5\n",
		"static/notes.txt", "plain text is allowed\n",
	))
	if err != nil {
		t.Fatalf("deploy multi-file app: %v", err)
	}
	if code, body := p.get("multi", "/"); code != 200 || !strings.Contains(body, `"HI"`) {
		t.Fatalf("GET multi/ = %d %s", code, body)
	}
	if code, body := p.get("multi", "/price"); code != 200 || !strings.Contains(body, `"price":10`) || !strings.Contains(body, "EUR") {
		t.Fatalf("GET multi/price = %d %s", code, body)
	}
	// The deploy compiled the five modules, and the runner loaded them so.
	for deadline := time.Now().Add(time.Minute); ; {
		res, err := c.apps.ListColdStarts(ctx, connect.NewRequest(&v1.ListColdStartsRequest{IdOrName: "multi", Limit: 1}))
		if err != nil {
			t.Fatal(err)
		}
		if starts := res.Msg.GetColdStarts(); len(starts) > 0 {
			if n := starts[0].GetCompiledModules(); n != 5 {
				t.Errorf("the cold start loaded %d modules compiled at deploy, want 5", n)
			}
			// As root, runners run as users of their own, and the deploy
			// put the files in the runners' host cache: the start linked
			// them instead of fetching.
			if got, want := starts[0].GetCached(), os.Geteuid() == 0; got != want {
				t.Errorf("the cold start linked its files from the host's cache: %v, want %v", got, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("multi's cold start was never recorded")
		}
		time.Sleep(100 * time.Millisecond) // polling a record written after the answer, not waiting for readiness
	}

	// Every limit names the file and what to change.
	many := []string{}
	for i := range 11 {
		many = append(many, fmt.Sprintf("m%d.py", i), "x = 1\n")
	}
	for _, tc := range []struct {
		name  string
		files []*v1.File
		want  []string
	}{
		{"too many files", files(many...), []string{"11 files", "at most 10"}},
		{"file too big", files("app.py", "app = 1\n", "big.py", "#"+strings.Repeat("x", 101<<10)+"\n"), []string{"big.py", "100 KB"}},
		{"total too big", files("app.py", "app = 1\n", "a.py", "#"+strings.Repeat("x", 99<<10), "b.py", "#"+strings.Repeat("x", 99<<10),
			"c.py", "#"+strings.Repeat("x", 99<<10), "d.py", "#"+strings.Repeat("x", 99<<10), "e.py", "#"+strings.Repeat("x", 99<<10), "f.py", "#"+strings.Repeat("x", 99<<10)),
			[]string{"500 KB"}},
		{"parent path", files("app.py", "app = 1\n", "../evil.py", "x = 1\n"), []string{"../evil.py", ".."}},
		{"absolute path", files("app.py", "app = 1\n", "/etc/x.py", "x = 1\n"), []string{"/etc/x.py"}},
		{"bad extension", files("app.py", "app = 1\n", "run.sh", "echo\n"), []string{"run.sh"}},
		{"error in another file", files("app.py", "import helpers\napp = 1\n", "helpers.py", "def f(:\n"), []string{"helpers.py:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := deployFiles(t, c, "multi", tc.files)
			wantCode(t, tc.name, err, connect.CodeInvalidArgument, tc.want...)
			_, err = c.apps.SaveDraft(ctx, connect.NewRequest(&v1.SaveDraftRequest{IdOrName: "multi", Files: tc.files}))
			if tc.name != "error in another file" {
				wantCode(t, tc.name+" (draft)", err, connect.CodeInvalidArgument, tc.want...)
			} else if err != nil {
				t.Errorf("a draft with a syntax error must be saved: %v", err)
			}
		})
	}

	// Presets.
	for _, tc := range []struct {
		fw    v1.Framework
		names []string
	}{
		{v1.Framework_FRAMEWORK_FASTAPI, []string{"app.py", "routes.py", "models.py", "services.py", "helpers.py"}},
		{v1.Framework_FRAMEWORK_FASTHTML, []string{"app.py", "routes.py", "models.py", "services.py", "components.py"}},
	} {
		name := "preset-" + strings.ToLower(strings.TrimPrefix(tc.fw.String(), "FRAMEWORK_"))
		res, err := c.apps.CreateApp(ctx, connect.NewRequest(&v1.CreateAppRequest{Name: name, Framework: tc.fw, Mode: v1.AppMode_APP_MODE_MULTI}))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range res.Msg.GetDraft().GetFiles() {
			got = append(got, f.GetName())
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.names) {
			t.Errorf("%s preset files %v, want %v", tc.fw, got, tc.names)
		}
	}
	if _, err := deployFiles(t, c, "preset-fastapi", nil); err != nil {
		t.Fatalf("deploy the FastAPI preset: %v", err)
	}
	if code, body := p.get("preset-fastapi", "/items"); code != 200 || body != "[]" {
		t.Errorf("FastAPI preset GET /items = %d %s", code, body)
	}
	// Debian has no python-fasthtml: validation says so instead of a failed start.
	_, err = deployFiles(t, c, "preset-fasthtml", nil)
	wantCode(t, "deploy FastHTML preset", err, connect.CodeInvalidArgument, "fasthtml", "not installed", "python-fasthtml")
}

// TestLifecycleCLI drives the lifecycle through the command-line client,
// following events and logs as they happen.
func TestLifecycleCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	p := startPlatform(t, t.TempDir(), t.TempDir(), "--idle-timeout", "2s")
	p.mustCLI("signup", "--username", "cli", "--password", "cli password")

	out := p.mustCLI("new", "greeter", "--template", "hello")
	wantContains(t, "new", out, "created app greeter with app.py", "live", "http://greeter.localhost:"+p.port)
	if code, body := p.get("greeter", "/hello/cli"); code != 200 || !strings.Contains(body, "Hello, cli!") {
		t.Fatalf("GET greeter/hello/cli = %d %s", code, body)
	}

	// Follow events and logs in the background while things happen.
	events := startFollow(t, p, "events", "-f", "greeter")
	logs := startFollow(t, p, "logs", "-f", "greeter")

	src := t.TempDir()
	app := writeFile(t, src, "app.py", fmt.Sprintf(envApp, "second"))
	p.mustCLI("deploy", "--name", "greeter", app)
	events.want("deployed version")
	p.get("greeter", "/")
	events.want("cold start")
	logs.want("root was called")

	out = p.mustCLI("versions", "greeter")
	if n := strings.Count(out, "\n"); n != 3 {
		t.Errorf("versions: %d lines, want a header and 2 versions:\n%s", n, out)
	}
	wantContains(t, "versions", out, "(current)", "app.py")
	out = p.mustCLI("rollback", "greeter")
	wantContains(t, "rollback", out, "greeter now serves version")
	events.want("rolled back")
	p.waitGet("greeter", "/hello/x", 200, "Hello, x!")

	out = p.mustCLI("env", "set", "greeter", "COLOR=blue", "TOKEN=t0p", "--secret")
	wantContains(t, "env set", out, "COLOR=(secret, set)", "TOKEN=(secret, set)")
	out = p.mustCLI("env", "set", "greeter", "PLAIN=yes")
	wantContains(t, "env set", out, "PLAIN=yes", "TOKEN=(secret, set)")
	events.want("environment changed")
	out = p.mustFail("env", "set", "greeter", "PATH=/tmp")
	wantContains(t, "reserved", out, "PATH", "reserved")
	out = p.mustCLI("env", "unset", "greeter", "PLAIN")
	if strings.Contains(out, "PLAIN") {
		t.Errorf("after unset: %s", out)
	}
	out = p.mustCLI("clone", "greeter", "greeter-two")
	wantContains(t, "clone", out, "cloned greeter to greeter-two", "http://greeter-two.localhost:"+p.port)
	wantContains(t, "clone env", p.mustCLI("env", "greeter-two"), "TOKEN=(secret, not set)")

	out = p.mustCLI("templates")
	wantContains(t, "templates", out, "hello", "notes", "jwt", "kanban", "fastapi-multi", "fasthtml-multi", "todo", "fasthtml", "(global)")
	wantContains(t, "templates save", p.mustCLI("templates", "save", "my starter", "--from", "greeter"), "saved template my starter")
	wantContains(t, "templates --mine", p.mustCLI("templates", "--mine"), "my starter", "cli")
	if out := p.mustCLI("templates", "--mine"); strings.Contains(out, "(global)") {
		t.Errorf("--mine lists global templates:\n%s", out)
	}

	// Idle: the runner is reaped and the event says so.
	events.want("scaled to zero")

	// A crash is an event with the reason.
	crashy := writeFile(t, src, "crashy.py", "import os\nfrom fastapi import FastAPI\napp = FastAPI()\n@app.get('/crash')\ndef crash():\n    os._exit(3)\n")
	p.mustCLI("deploy", crashy)
	crashEvents := startFollow(t, p, "events", "-f", "crashy")
	p.get("crashy", "/crash")
	crashEvents.want("crashed")
	if l := crashEvents.seen[len(crashEvents.seen)-1]; !strings.Contains(l, "3") {
		t.Errorf("crash event %q does not give the exit status 3", l)
	}
}

// follower runs a following CLI command and waits for lines from it.
type follower struct {
	t      *testing.T
	lines  chan string
	seen   []string
	stderr *logBuffer
}

func startFollow(t *testing.T, p *platform, args ...string) *follower {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(cmd.Environ(), "HOME="+p.home, "XDG_CONFIG_HOME="+filepath.Join(p.home, ".config"),
		"GOFASTAPI_SERVER=http://127.0.0.1:"+p.port, "GOFASTAPI_TOKEN=")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	f := &follower{t: t, lines: make(chan string, 1000), stderr: &logBuffer{}}
	cmd.Stderr = f.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			f.lines <- s.Text()
		}
		close(f.lines)
	}()
	return f
}

// want waits until a line containing s arrives.
func (f *follower) want(s string) {
	f.t.Helper()
	for _, l := range f.seen {
		if strings.Contains(l, s) {
			return
		}
	}
	timeout := time.After(time.Minute)
	for {
		select {
		case l, ok := <-f.lines:
			if !ok {
				f.t.Fatalf("the followed stream ended before %q; it had:\n%s\nstderr: %s", s, strings.Join(f.seen, "\n"), f.stderr)
			}
			f.seen = append(f.seen, l)
			if strings.Contains(l, s) {
				return
			}
		case <-timeout:
			f.t.Fatalf("no line with %q within a minute; had:\n%s", s, strings.Join(f.seen, "\n"))
		}
	}
}
