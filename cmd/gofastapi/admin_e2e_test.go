package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/protobuf/proto"

	"github.com/gofastapi/gofastapi/controlplane/embedded"
	"github.com/gofastapi/gofastapi/gateway/ownerlimit"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// TestAdminCLI runs the admin and account commands as people would:
// roles, public signups, limits, the import allowlist, the dashboard's
// figures and feed, sessions, password change and logging out everywhere.
func TestAdminCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	p := startPlatform(t, t.TempDir(), t.TempDir(), "--warm", "0")
	src := t.TempDir()
	alice, bob, carol := p, p.user(t), p.user(t)
	alice.mustCLI("signup", "--username", "alice", "--password", "alice password", "--email", "alice@example.com")
	bob.mustCLI("signup", "--username", "bob", "--password", "bob password")
	wantContains(t, "a user running admin users", bob.mustFail("admin", "users"), "needs an admin")

	bob.mustCLI("deploy", writeFile(t, src, "bobapp.py", fmt.Sprintf(helloApp, "bob")))
	out := alice.mustCLI("admin", "users")
	for _, row := range [][]string{{"alice", "admin", "0"}, {"bob", "user", "1"}} {
		if !regexpLine(out, row...) {
			t.Errorf("admin users lacks a row %v:\n%s", row, out)
		}
	}

	// Public signups off: only admins create users.
	wantContains(t, "settings", alice.mustCLI("admin", "settings", "--public-signups", "off"), "public signups:  off")
	wantContains(t, "signup while signups are off", carol.mustFail("signup", "--username", "carol", "--password", "carol password"),
		"public signups are off")
	wantContains(t, "create-user", alice.mustCLI("admin", "create-user", "--username", "carol", "--password", "carol password"), "created user carol")
	if _, err := p.as("").auth.Signup(context.Background(), connect.NewRequest(&v1.SignupRequest{Username: "mallory", Password: "long enough"})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("Signup while public signups are off: %v, want permission_denied", err)
	}
	carol.mustCLI("login", "--username", "carol", "--password", "carol password")

	// Roles: nobody demotes themselves; a demotion takes effect at once.
	wantContains(t, "self-demotion", alice.mustFail("admin", "demote", "alice"), "cannot demote yourself")
	wantContains(t, "promote", alice.mustCLI("admin", "promote", "bob"), "bob is now an admin")
	wantContains(t, "demote", bob.mustCLI("admin", "demote", "alice"), "alice is no longer an admin")
	wantContains(t, "a demoted admin", alice.mustFail("admin", "stats"), "needs an admin")
	wantContains(t, "self-deletion", bob.mustFail("admin", "delete-user", "--yes", "bob"), "cannot delete your own account")

	// Limits: carol may have one app.
	wantContains(t, "limits", bob.mustCLI("admin", "limits", "--apps", "1", "carol"), "custom: apps 1")
	hello := writeFile(t, src, "hello.py", fmt.Sprintf(helloApp, "carol"))
	carol.mustCLI("deploy", "--name", "carol-one", hello)
	wantContains(t, "a second app over the limit", carol.mustFail("deploy", "--name", "carol-two", hello),
		"app limit reached", "limit is 1 app (tier custom)")
	wantContains(t, "a negative limit", bob.mustFail("admin", "limits", "--apps", "-1", "carol"), "--apps is a count, 0 (no limit) or more, not -1")
	if _, err := p.as(carol.token(t)).apps.CreateApp(context.Background(), connect.NewRequest(&v1.CreateAppRequest{Name: "carol-three"})); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Errorf("CreateApp over the limit: %v, want resource_exhausted", err)
	}

	// The import allowlist applies to the next deploy, without a restart.
	csvApp := writeFile(t, src, "csvapp.py", "import csv\nfrom fastapi import FastAPI\napp = FastAPI()\n")
	wantContains(t, "deploy importing csv", carol.mustFail("deploy", "--name", "carol-one", csvApp), "import of 'csv' is not allowed")
	out = bob.mustCLI("admin", "settings", "--allow", "csv")
	wantContains(t, "settings after --allow", out, "csv (set by an admin)", "default imports: fastapi")
	carol.mustCLI("deploy", "--name", "carol-one", csvApp)
	wantContains(t, "settings after reset", bob.mustCLI("admin", "settings", "--reset-imports"), "(the defaults)")
	carol.mustFail("deploy", "--name", "carol-one", csvApp)
	subprocessApp := writeFile(t, src, "subapp.py", "import subprocess\nfrom fastapi import FastAPI\napp = FastAPI()\n")
	bob.mustCLI("admin", "settings", "--set-imports", "*")
	carol.mustCLI("deploy", "--name", "carol-one", subprocessApp)
	bob.mustCLI("admin", "settings", "--reset-imports")

	before := regexp.MustCompile(`(?m)^user databases\s+(\d+)$`).FindStringSubmatch(bob.mustCLI("admin", "stats"))
	carol.mustCLI("db", "create", "extra")
	carol.mustCLI("db", "insert", "extra", "people", `{"name": "carol", "bio": "`+strings.Repeat("x", 4000)+`"}`)
	out = bob.mustCLI("admin", "stats")
	n, _ := strconv.Atoi(before[1])
	for _, row := range [][]string{{"users", "3"}, {"admins", "1"}, {"apps", "2"}, {"deployed apps", "2"}, {"templates", "8"},
		{"user databases", strconv.Itoa(n + 1)}} {
		if !regexpLine(out, row...) {
			t.Errorf("admin stats lacks %v:\n%s", row, out)
		}
	}
	wantContains(t, "admin stats", out, "database storage", "KiB")
	if !regexp.MustCompile(`(?m)^user database storage\s+[1-9][0-9.]* (B|KiB|MiB)$`).MatchString(out) {
		t.Errorf("admin stats lacks the users' database storage:\n%s", out)
	}
	out = bob.mustCLI("admin", "activity")
	for _, row := range [][]string{
		{"alice", "signup", "alice", "first user: admin"}, {"bob", "app.deploy", "bobapp"}, {"alice", "settings.update", "public signups off"},
		{"alice", "user.create", "carol"}, {"alice", "user.promote", "bob"}, {"bob", "user.demote", "alice"},
		{"bob", "user.limits", "carol"}, {"carol", "app.create", "carol-one"}, {"bob", "settings.update", "+csv"},
	} {
		if !regexpLine(out, row...) {
			t.Errorf("admin activity lacks %v:\n%s", row, out)
		}
	}

	// Sessions: carol has two; a password change ends the other; logout
	// --all ends every one.
	carol2 := p.user(t)
	carol2.mustCLI("login", "--username", "carol", "--password", "carol password")
	out = carol.mustCLI("sessions")
	if n := strings.Count(out, "127.0.0.1"); n != 2 || strings.Count(out, "(this session)") != 1 {
		t.Errorf("carol's sessions: want 2, one marked as this session:\n%s", out)
	}
	wantContains(t, "passwd", carol.mustCLI("passwd", "--current", "carol password", "--new", "carol's new password"), "1 other session(s) ended")
	wantContains(t, "the other session after passwd", carol2.mustFail("whoami"), "session expired or revoked")
	carol.mustCLI("whoami")
	if out := carol2.mustFail("login", "--username", "carol", "--password", "carol password"); !strings.Contains(out, "wrong username or password") ||
		strings.Contains(out, "run `gofastapi login`") {
		t.Errorf("login with the old password: %q; want the reason, without a hint to log in", out)
	}
	carol2.mustCLI("login", "--username", "carol", "--password", "carol's new password")
	wantContains(t, "logout --all", carol2.mustCLI("logout", "--all"), "2 session(s) ended")
	carol.mustFail("whoami")
}

// regexpLine reports whether some line of out has the fields in order.
func regexpLine(out string, fields ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := line, true
		for _, f := range fields {
			i := strings.Index(rest, f)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(f):]
		}
		if ok {
			return true
		}
	}
	return false
}

// TestDeleteUserCascade deletes a user with deployed apps, a running app
// and sessions, then looks in MongoDB and Redis: nothing of theirs is
// left, and a bundle another user's app shares stays.
func TestDeleteUserCascade(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	ctx := context.Background()
	// The test's own Redis, so it can look inside afterwards.
	rs, err := embedded.StartRedis(ctx, "redis-server")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Stop)
	model := &fakeModel{}
	modelSrv := httptest.NewServer(model)
	t.Cleanup(modelSrv.Close)
	data := t.TempDir()
	p := startPlatform(t, data, t.TempDir(), "--warm", "1", "--redis-url", rs.URL(), "--assistant-private-endpoints")

	root, _ := p.signup(t, "root", "root password")
	dave, daveUser := p.signup(t, "dave", "dave password")
	p.as("").auth.Login(ctx, connect.NewRequest(&v1.LoginRequest{Username: "dave", Password: "dave password"}))
	shared := fmt.Sprintf(helloApp, "shared")
	hashes := map[string]bool{
		p.deploy(t, dave, "dave-one", fmt.Sprintf(helloApp, "one")): true,
		p.deploy(t, dave, "dave-one", fmt.Sprintf(helloApp, "two")): true,
	}
	sharedHash := p.deploy(t, dave, "dave-two", shared)
	if _, err := p.as(dave).tmpl.CreateTemplate(ctx, connect.NewRequest(&v1.CreateTemplateRequest{Name: "dave's", FromApp: "dave-two"})); err != nil {
		t.Fatal(err)
	}
	p.deploy(t, root, "root-app", shared) // the same files: the same bundle
	if _, err := p.as(dave).asst.SetAssistantSettings(ctx, connect.NewRequest(&v1.SetAssistantSettingsRequest{
		Provider: v1.AssistantProvider_ASSISTANT_PROVIDER_OPENAI, Model: "fake-model", BaseUrl: modelSrv.URL + "/v1", ApiKey: proto.String("sk-dave")})); err != nil {
		t.Fatal(err)
	}
	model.reset(func(w io.Writer, _ map[string]any) { oaText(w, "Hello, dave."); oaEnd(w, "stop") })
	if r := runChat(p.as(dave), "dave-one", "hi"); r.err != nil || r.conversation == "" || r.text != "Hello, dave." {
		t.Fatalf("dave's chat: %+v", r)
	}
	if code, body := p.get("dave-one", "/"); code != 200 || !strings.Contains(body, "two") {
		t.Fatalf("GET dave-one = %d %s", code, body)
	}
	apps, err := p.as(dave).apps.ListApps(ctx, connect.NewRequest(&v1.ListAppsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var appIDs []string
	for _, a := range apps.Msg.GetApps() {
		appIDs = append(appIDs, a.GetId())
	}
	users, err := p.as(root).admin.ListUsers(ctx, connect.NewRequest(&v1.ListUsersRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users.Msg.GetUsers() {
		// Both of dave's apps run: each deploy warmed its version.
		if u.GetUser().GetUsername() == "dave" && (u.GetAppCount() != 2 || u.GetRunningApps() != 2 || u.GetLastActiveAt() == nil) {
			t.Errorf("dave in the user list: %d apps, %d running, last active %v; want 2, 2, set", u.GetAppCount(), u.GetRunningApps(), u.GetLastActiveAt())
		}
	}

	// Everything checked below must exist before the deletion, or the
	// checks after it prove nothing.
	rdb := redis.NewClient(mustParseRedisURL(t, rs.URL()))
	t.Cleanup(func() { rdb.Close() })
	forbidden := append([]string{daveUser.GetId(), "dave"}, appIDs...)
	for h := range hashes {
		forbidden = append(forbidden, h)
	}
	// The gateway spends dave's requests from his shared request count at
	// its next sync.
	for deadline := time.Now().Add(10 * time.Second); rdb.Exists(ctx, ownerlimit.Key(daveUser.GetId())).Val() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("dave's shared request count was not written")
		}
	}
	before := redisKeys(t, rdb)
	for _, k := range []string{"route:dave-one", "route:dave-two", "bundle:" + sharedHash, "logs:" + appIDs[0], "coldstarts:" + appIDs[0]} {
		if !before[k] {
			t.Errorf("before the deletion Redis lacks %s: %v", k, before)
		}
	}

	res, err := p.as(root).admin.DeleteUser(ctx, connect.NewRequest(&v1.DeleteUserRequest{User: "dave"}))
	if err != nil {
		t.Fatalf("DeleteUser: %v\n%s", err, p.logs)
	}
	got := map[string]int64{}
	for _, r := range res.Msg.GetRemoved() {
		got[r.GetKind()] = r.GetCount()
	}
	want := map[string]int64{"sessions": 2, "apps": 2, "versions": 3, "bundles": 2, "dependency archives": 0, "logs": 2,
		"activity": 6 /* signup, 2 app.create, 3 app.deploy */, "user": 1, "templates": 1,
		"databases": 1 /* provisioned when dave's app first started */, "assistant settings": 1, "assistant conversations": 1, "request counts": 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}

	if _, err := p.as(dave).auth.Me(ctx, connect.NewRequest(&v1.MeRequest{})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("dave's session after deletion: %v, want unauthenticated", err)
	}
	if code, _ := p.get("dave-one", "/"); code != 404 {
		t.Errorf("GET dave-one after deletion = %d, want 404", code)
	}
	// dave's runners are released once the gateway hears the routes are
	// gone; root-app's, warmed at its deploy, runs on.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := p.as(root).admin.GetStats(ctx, connect.NewRequest(&v1.GetStatsRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		if st.Msg.GetRunningApps() == 1 {
			if st.Msg.GetUsers() != 1 || st.Msg.GetApps() != 1 {
				t.Errorf("stats after deletion: %d users, %d apps; want 1, 1", st.Msg.GetUsers(), st.Msg.GetApps())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dave's runners were not released: %d running apps, want 1 (root-app)", st.Msg.GetRunningApps())
		}
		time.Sleep(50 * time.Millisecond) // polling the pool, which releases asynchronously
	}

	for k := range redisKeys(t, rdb) {
		for _, f := range forbidden {
			if strings.Contains(k, f) {
				t.Errorf("Redis key %s remains (contains %s)", k, f)
			}
		}
	}
	if n := rdb.Exists(ctx, "bundle:"+sharedHash).Val(); n != 1 {
		t.Error("the bundle root's app shares with dave's was deleted")
	}

	db := platformDB(t, data)
	colls, err := db.ListCollectionNames(ctx, bson.M{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range colls {
		cur, err := db.Collection(c).Find(ctx, bson.M{})
		if err != nil {
			t.Fatal(err)
		}
		var docs []bson.M
		if err := cur.All(ctx, &docs); err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			js, _ := bson.MarshalExtJSON(d, false, false)
			s := string(js)
			if c == "activity" && d["actor"] == "root" && d["kind"] == "user.delete" {
				s = strings.ReplaceAll(s, `"subject":"dave"`, "") // the admin's own record of the deletion
			}
			for _, f := range forbidden {
				if strings.Contains(s, f) {
					t.Errorf("MongoDB %s still holds %s: %s", c, f, js)
				}
			}
		}
	}
	if code, body := p.get("root-app", "/"); code != 200 || !strings.Contains(body, "shared") {
		t.Errorf("GET root-app after dave's deletion = %d %s", code, body)
	}
}

func mustParseRedisURL(t *testing.T, u string) *redis.Options {
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	return opt
}

func redisKeys(t *testing.T, rdb *redis.Client) map[string]bool {
	keys, err := rdb.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, k := range keys {
		out[k] = true
	}
	return out
}

// TestRequestLimit: an admin's limit on a user's requests reaches the edge
// at once (the user's routes are written again): past it the user's app
// answers 429 saying why and when to retry, while other users' apps serve;
// lifting it, or making the user an admin, lets requests through again.
func TestRequestLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	ctx := context.Background()
	p := startPlatform(t, t.TempDir(), t.TempDir())
	root, _ := p.signup(t, "root", "root password")
	carol, _ := p.signup(t, "carol", "carol password")
	p.deploy(t, carol, "quota", fmt.Sprintf(helloApp, "v1"))
	p.deploy(t, root, "roots", fmt.Sprintf(helloApp, "root's"))
	p.waitGet("quota", "/", 200, "v1")

	setLimits := func(req *v1.SetLimitsRequest) *v1.Limits {
		t.Helper()
		req.User = "carol"
		res, err := p.as(root).admin.SetLimits(ctx, connect.NewRequest(req))
		if err != nil {
			t.Fatalf("SetLimits: %v", err)
		}
		return res.Msg.GetLimits()
	}
	// waitRefused polls until the app answers 429, and returns that answer.
	waitRefused := func() (string, string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, hdr, body := p.request("quota.localhost", "/", http.Header{"Accept": {"application/json"}})
			if code == http.StatusTooManyRequests {
				return hdr.Get("Retry-After"), body
			}
			if code != 200 || time.Now().After(deadline) {
				t.Fatalf("GET quota/ = %d %s; want 200 until the limit, then 429", code, body)
			}
		}
	}

	if l := setLimits(&v1.SetLimitsRequest{RequestsPerMinute: proto.Int32(3)}); l.GetRequestsPerMinute() != 3 || l.GetTier() != "custom" {
		t.Fatalf("limits %v, want 3 requests a minute, custom", l)
	}
	retry, body := waitRefused()
	if !strings.Contains(body, `App \"quota\" has had as many requests as its owner's plan allows (3 a minute). Retry in `) {
		t.Errorf("429 body %s", body)
	}
	if n, err := strconv.Atoi(retry); err != nil || n < 1 || n > 20 {
		t.Errorf("Retry-After %q, want 1-20 seconds", retry)
	}
	for range 5 {
		if code, body := p.get("roots", "/"); code != 200 {
			t.Fatalf("another user's app: %d %s", code, body)
		}
	}

	setLimits(&v1.SetLimitsRequest{Tier: "unlimited"})
	p.waitGet("quota", "/", 200, "v1")

	setLimits(&v1.SetLimitsRequest{RequestsPerMinute: proto.Int32(1)})
	waitRefused()
	if _, err := p.as(root).admin.SetAdmin(ctx, connect.NewRequest(&v1.SetAdminRequest{User: "carol", Admin: true})); err != nil {
		t.Fatal(err)
	}
	p.waitGet("quota", "/", 200, "v1") // admins' apps have no request limit
}
