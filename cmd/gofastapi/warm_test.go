package main

import (
	"context"
	"fmt"
	"html"
	"strings"
	"testing"

	"connectrpc.com/connect"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// brokenApp raises while it is imported, at line 3.
const brokenApp = `from fastapi import FastAPI
app = FastAPI()
ratio = 1 / 0
`

// TestWarmStage: a deploy starts a runner for the new version before it
// reports live, so the first request finds it serving; a version that
// does not start fails the deploy at the warm stage, with the app's error
// and line, and the version before serves again.
func TestWarmStage(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	ctx := context.Background()
	p := startPlatform(t, t.TempDir(), t.TempDir(), "--debug-endpoints")
	token, _ := p.signup(t, "wren", "wren's password")
	p.mustCLI("login", "--username", "wren", "--password", "wren's password")

	msgs, _, err := p.deployFiles(token, "warmed", map[string]string{"app.py": fmt.Sprintf(helloApp, "v1")})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(msgs, "\n"), "a runner serves version") {
		t.Errorf("deploy stages lack the warm stage's message: %q", msgs)
	}
	// The deploy's runner serves before any request, and answers the
	// first one.
	app, err := p.as(token).apps.GetApp(ctx, connect.NewRequest(&v1.GetAppRequest{IdOrName: "warmed"}))
	if err != nil {
		t.Fatal(err)
	}
	appRunner := func() []debugRunner {
		_, claimed := p.runners(t)
		var mine []debugRunner
		for _, r := range claimed {
			if r.AppID == app.Msg.GetApp().GetId() {
				mine = append(mine, r)
			}
		}
		return mine
	}
	before := appRunner()
	if len(before) != 1 {
		t.Fatalf("runners of the app after its deploy, before any request: %+v; want one", before)
	}
	if code, body := p.get("warmed", "/"); code != 200 || !strings.Contains(body, "v1") {
		t.Fatalf("GET / = %d %s", code, body)
	}
	if after := appRunner(); len(after) != 1 || after[0].Addr != before[0].Addr {
		t.Errorf("runners of the app after its first request: %+v; want the deploy's, %+v", after, before[0])
	}
	// The start is recorded as a cold start with no first byte.
	p.waitLog("warmed", "first byte none (no request waited)")

	// A version that raises at import: the deploy fails at the warm stage
	// and the version before serves again.
	msgs, _, err = p.deployFiles(token, "warmed", map[string]string{"app.py": brokenApp})
	want := `deploy failed at the warm stage: App "warmed" did not start: app failed to start: ZeroDivisionError: division by zero (at app.py:3)`
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "deployed before, serves again meanwhile") {
		t.Fatalf("deploy of a version that does not start: %v (stages %q); want FailedPrecondition saying %q", err, msgs, want)
	}
	if code, body := p.get("warmed", "/"); code != 200 || !strings.Contains(body, "v1") {
		t.Errorf("GET / after the failed deploy = %d %s; want v1", code, body)
	}
	app, err = p.as(token).apps.GetApp(ctx, connect.NewRequest(&v1.GetAppRequest{IdOrName: "warmed"}))
	if err != nil {
		t.Fatal(err)
	}
	if a := app.Msg.GetApp(); a.GetStatus() != v1.AppStatus_APP_STATUS_CHANGES_NOT_DEPLOYED {
		t.Errorf("status after the failed deploy = %v; want the broken files kept as the draft, not deployed", a.GetStatus())
	}
	p.waitLog("warmed", "did not start: rolled back to")

	// A deploy that changes only the entrypoint, to a module that does not
	// start, goes back to the entrypoint before, with the same files.
	files := []*v1.File{{Name: "app.py", Content: []byte(fmt.Sprintf(helloApp, "entry v1"))}, {Name: "main.py", Content: []byte(brokenApp)}}
	p.createApp(t, token, "entry")
	deployEntry := func(entry string) error {
		s, err := p.as(token).apps.Deploy(ctx, connect.NewRequest(&v1.DeployRequest{IdOrName: "entry", Files: files, Entrypoint: entry}))
		if err != nil {
			return err
		}
		for s.Receive() {
		}
		return s.Err()
	}
	if err := deployEntry("app.py"); err != nil {
		t.Fatal(err)
	}
	err = deployEntry("main.py")
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "with entrypoint app.py, deployed before, serves again meanwhile") {
		t.Errorf("deploy of the entrypoint main.py, which does not start: %v; want the entrypoint app.py restored", err)
	}
	if code, body := p.get("entry", "/"); code != 200 || !strings.Contains(body, "entry v1") {
		t.Errorf("GET entry / after the failed deploy = %d %s; want the app of app.py", code, body)
	}
	if a, err := p.as(token).apps.GetApp(ctx, connect.NewRequest(&v1.GetAppRequest{IdOrName: "entry"})); err != nil || a.Msg.GetApp().GetEntrypoint() != "app.py" {
		t.Errorf("the app's entrypoint after the failed deploy: %v, %v; want app.py", a, err)
	}
	p.waitLog("entry", "with entrypoint main.py did not start: rolled back to entrypoint app.py")

	// Asked not to warm (as scripts deploying many apps may), a deploy
	// leaves starting to the first request.
	cold := writeFile(t, t.TempDir(), "cold.py", fmt.Sprintf(helloApp, "cold"))
	if out := p.mustCLI("deploy", "--no-warm", cold); !strings.Contains(out, "warm      not warmed, as asked") {
		t.Errorf("deploy --no-warm:\n%s", out)
	}
	_, claimed := p.runners(t)
	coldApp, err := p.as(token).apps.GetApp(ctx, connect.NewRequest(&v1.GetAppRequest{IdOrName: "cold"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range claimed {
		if r.AppID == coldApp.Msg.GetApp().GetId() {
			t.Errorf("a runner serves app cold, deployed with --no-warm, before any request: %+v", r)
		}
	}
	if code, body := p.get("cold", "/"); code != 200 || !strings.Contains(body, "cold") {
		t.Errorf("GET cold / = %d %s", code, body)
	}

	// A first deploy that does not start stays deployed: there is nothing
	// to go back to.
	_, _, err = p.deployFiles(token, "broken", map[string]string{"app.py": brokenApp})
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "The app is deployed but does not start until it is fixed.") {
		t.Errorf("first deploy of a version that does not start: %v", err)
	}
	if code, body := p.get("broken", "/"); code != 502 || !strings.Contains(body, "ZeroDivisionError") {
		t.Errorf("GET broken / = %d %s; want 502 with the error", code, body)
	}
}

// TestStartTimeout: an app whose import outlasts the runners' ready
// timeout fails to start with that limit named, at the deploy's warm stage
// and on a request, not with the gateway's own, longer bound.
func TestStartTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	p := startPlatform(t, t.TempDir(), t.TempDir(), "--ready-timeout", "1s")
	token, _ := p.signup(t, "sloth", "sloth's password")
	const slowApp = "import time\nfrom fastapi import FastAPI\napp = FastAPI()\ntime.sleep(60)\n"
	want := `App "slow" did not start: app did not answer within 1s. Check that importing it does not block.`
	_, _, err := p.deployFiles(token, "slow", map[string]string{"app.py": slowApp})
	if err == nil || !strings.Contains(err.Error(), "deploy failed at the warm stage: "+want) {
		t.Errorf("deploy of an app whose import blocks: %v; want the warm stage saying %q", err, want)
	}
	if code, body := p.get("slow", "/"); code != 504 || !strings.Contains(body, html.EscapeString(want)) {
		t.Errorf("GET slow / = %d %s; want 504 saying %q", code, body, want)
	}
}
