package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"connectrpc.com/connect"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// appCall makes one request to app slug through the gateway.
func (p *platform) appCall(t *testing.T, method, slug, path, ctype, body string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://127.0.0.1:"+p.port+path, strings.NewReader(body))
	req.Host = slug + ".localhost:" + p.port
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	// A redirect stays on the app's host: follow it by hand.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, slug, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestGlobalTemplates creates an app from every global template, deploys
// it and exercises its routes; the FastHTML ones are refused at
// validation with the reason, since Debian has no python-fasthtml.
func TestGlobalTemplates(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	p := startPlatform(t, t.TempDir(), t.TempDir(), "--warm", "2")
	tok, _ := p.signup(t, "tina", "tina password")
	c := p.as(tok)
	ctx := context.Background()

	list, err := c.tmpl.ListTemplates(ctx, connect.NewRequest(&v1.ListTemplatesRequest{Scope: v1.TemplateScope_TEMPLATE_SCOPE_GLOBAL}))
	if err != nil {
		t.Fatal(err)
	}
	exercise := map[string]func(t *testing.T, slug string){
		"hello": func(t *testing.T, slug string) {
			wantCall(t, p, "GET", slug, "/hello/tina", "", "", 200, "Hello, tina!")
			wantCall(t, p, "POST", slug, "/greet", "application/json", `{"name":"api"}`, 200, "Hello, api!")
			wantCall(t, p, "POST", slug, "/greet", "application/json", `{}`, 422, "name")
		},
		"todo": func(t *testing.T, slug string) {
			wantCall(t, p, "GET", slug, "/", "", "", 200, `"todos":"/todos"`)
			wantCall(t, p, "POST", slug, "/todos", "application/json", `{"title":"write tests"}`, 201, `"id":1`)
			wantCall(t, p, "PATCH", slug, "/todos/1", "application/json", `{"done":true}`, 200, `"done":true`)
			wantCall(t, p, "GET", slug, "/todos?done=true", "", "", 200, "write tests")
			wantCall(t, p, "POST", slug, "/todos", "application/json", `{"title":""}`, 422, "")
			wantCall(t, p, "DELETE", slug, "/todos/1", "", "", 204, "")
			wantCall(t, p, "GET", slug, "/todos/1", "", "", 404, "no such todo")
		},
		"notes": func(t *testing.T, slug string) {
			wantCall(t, p, "POST", slug, "/notes/form", "application/x-www-form-urlencoded",
				"text="+url.QueryEscape(`<script>alert("x")</script> & more`), 303, "")
			wantCall(t, p, "POST", slug, "/notes", "application/json", `{"text":"second note"}`, 201, "")
			code, page := p.appCall(t, "GET", slug, "/", "", "")
			if code != 200 || !strings.Contains(page, "&lt;script&gt;alert(&#x27;x&#x27;)") && !strings.Contains(page, "&lt;script&gt;alert(&quot;x&quot;)") {
				t.Errorf("notes page = %d, the note must be there escaped:\n%s", code, page)
			}
			if strings.Contains(page, "<script>alert") {
				t.Errorf("notes page contains the note unescaped:\n%s", page)
			}
			wantCall(t, p, "GET", slug, "/notes", "", "", 200, "second note")
		},
		"jwt": func(t *testing.T, slug string) {
			wantCall(t, p, "GET", slug, "/me", "", "", 401, "missing bearer token")
			wantCall(t, p, "POST", slug, "/login", "application/json", `{"username":"demo","password":"wrong"}`, 401, "wrong username or password")
			_, body := wantCall(t, p, "POST", slug, "/login", "application/json", `{"username":"demo","password":"demo"}`, 200, "access_token")
			var tok struct {
				AccessToken string `json:"access_token"`
			}
			if err := json.Unmarshal([]byte(body), &tok); err != nil || tok.AccessToken == "" {
				t.Fatalf("login answer %s: %v", body, err)
			}
			if code, body := p.appCall(t, "GET", slug, "/me", "", "", "Authorization", "Bearer "+tok.AccessToken); code != 200 || !strings.Contains(body, `"demo"`) {
				t.Errorf("GET /me with the token = %d %s", code, body)
			}
			if code, _ := p.appCall(t, "GET", slug, "/me", "", "", "Authorization", "Bearer "+tok.AccessToken+"x"); code != 401 {
				t.Errorf("GET /me with a forged token = %d, want 401", code)
			}
		},
		"kanban": func(t *testing.T, slug string) {
			_, body := wantCall(t, p, "POST", slug, "/cards", "application/json", `{"title":"plan <b>"}`, 201, `"column":"todo"`)
			var card struct{ ID string }
			json.Unmarshal([]byte(body), &card)
			wantCall(t, p, "POST", slug, "/cards/"+card.ID+"/move", "application/json", `{"column":"doing"}`, 200, `"column":"doing"`)
			wantCall(t, p, "POST", slug, "/cards/"+card.ID+"/move", "application/json", `{"column":"nowhere"}`, 422, "column must be one of")
			wantCall(t, p, "GET", slug, "/", "", "", 200, "plan &lt;b&gt;")
		},
		"fastapi-multi": func(t *testing.T, slug string) {
			wantCall(t, p, "POST", slug, "/items", "application/json", `{"name":"Blue Widget","price":3}`, 201, `"slug":"blue-widget"`)
			wantCall(t, p, "GET", slug, "/items/1", "", "", 200, "Blue Widget")
			wantCall(t, p, "GET", slug, "/", "", "", 200, `"items":1`)
		},
	}
	for _, tpl := range list.Msg.GetTemplates() {
		t.Run(tpl.GetId(), func(t *testing.T) {
			slug := "t-" + tpl.GetId()
			res, err := c.apps.CreateApp(ctx, connect.NewRequest(&v1.CreateAppRequest{Name: slug, TemplateId: tpl.GetId()}))
			if err != nil {
				t.Fatal(err)
			}
			if res.Msg.GetApp().GetFramework() != tpl.GetFramework() || res.Msg.GetApp().GetTemplateId() != tpl.GetId() {
				t.Errorf("app from %s: %v", tpl.GetId(), res.Msg.GetApp())
			}
			_, err = deployFiles(t, c, slug, nil)
			if tpl.GetFramework() == v1.Framework_FRAMEWORK_FASTHTML {
				wantCode(t, "deploy "+tpl.GetId(), err, connect.CodeInvalidArgument, "python-fasthtml")
				return
			}
			if err != nil {
				t.Fatalf("deploy %s: %v\n%s", tpl.GetId(), err, p.logs)
			}
			wantCall(t, p, "GET", slug, "/health", "", "", 200, "")
			// The app's shared URL shows something, not a 404.
			wantCall(t, p, "GET", slug, "/", "", "", 200, "")
			ex := exercise[tpl.GetId()]
			if ex == nil {
				t.Fatalf("template %s has no test of its routes: add one", tpl.GetId())
			}
			ex(t, slug)
		})
	}

	// Users' own templates: save, list, use, update, delete.
	mine, err := c.tmpl.CreateTemplate(ctx, connect.NewRequest(&v1.CreateTemplateRequest{Name: "my hello", FromApp: "t-hello"}))
	if err != nil {
		t.Fatal(err)
	}
	id := mine.Msg.GetTemplate().GetId()
	if _, err := c.apps.CreateApp(ctx, connect.NewRequest(&v1.CreateAppRequest{Name: "from-mine", TemplateId: id})); err != nil {
		t.Fatal(err)
	}
	if _, err := deployFiles(t, c, "from-mine", nil); err != nil {
		t.Fatal(err)
	}
	wantCall(t, p, "GET", "from-mine", "/hello/me", "", "", 200, "Hello, me!")
	all, _ := c.tmpl.ListTemplates(ctx, connect.NewRequest(&v1.ListTemplatesRequest{}))
	if n := len(all.Msg.GetTemplates()); n != len(list.Msg.GetTemplates())+1 {
		t.Errorf("all templates: %d, want the globals and mine", n)
	}
	if _, err := c.tmpl.UpdateTemplate(ctx, connect.NewRequest(&v1.UpdateTemplateRequest{Id: id, Name: ptr("renamed")})); err != nil {
		t.Fatal(err)
	}
	_, err = c.tmpl.UpdateTemplate(ctx, connect.NewRequest(&v1.UpdateTemplateRequest{Id: "hello", Name: ptr("mine now")}))
	wantCode(t, "update a global template", err, connect.CodePermissionDenied)
	otherTok, _ := p.signup(t, "otto", "otto password")
	_, err = p.as(otherTok).tmpl.GetTemplate(ctx, connect.NewRequest(&v1.GetTemplateRequest{Id: id}))
	wantCode(t, "another user's template", err, connect.CodeNotFound)
	if err == nil || !strings.Contains(err.Error(), "no such template: list them with `gofastapi templates`") {
		t.Errorf("another user's template: %v; want it to say where templates are listed", err)
	}
	_, err = p.as(otherTok).apps.CreateApp(ctx, connect.NewRequest(&v1.CreateAppRequest{Name: "stolen", TemplateId: id}))
	wantCode(t, "create from another user's template", err, connect.CodeNotFound)
	if _, err := c.tmpl.DeleteTemplate(ctx, connect.NewRequest(&v1.DeleteTemplateRequest{Id: id})); err != nil {
		t.Fatal(err)
	}
	mineOnly, _ := c.tmpl.ListTemplates(ctx, connect.NewRequest(&v1.ListTemplatesRequest{Scope: v1.TemplateScope_TEMPLATE_SCOPE_MINE}))
	if len(mineOnly.Msg.GetTemplates()) != 0 {
		t.Errorf("after delete: %v", mineOnly.Msg.GetTemplates())
	}
}

func wantCall(t *testing.T, p *platform, method, slug, path, ctype, body string, code int, contains string) (int, string) {
	t.Helper()
	got, out := p.appCall(t, method, slug, path, ctype, body)
	if got != code || !strings.Contains(out, contains) {
		t.Fatalf("%s %s%s = %d %s; want %d with %q\n", method, slug, path, got, out, code, contains)
	}
	return got, out
}
