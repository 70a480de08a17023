package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"google.golang.org/protobuf/proto"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

// dbApp is a deployed app that tries things against the platform database
// with pymongo, from inside its runner, and reports each outcome as
// {"ok": bool, "result": ..., "error": "..."}.
const dbApp = `import os, json
from fastapi import FastAPI
from pymongo import MongoClient

app = FastAPI()
uri = os.environ["PLATFORM_MONGO_URI"]
client = MongoClient(uri, serverSelectionTimeoutMS=5000)
db = client.get_default_database()

def attempt(fn):
    try:
        return {"ok": True, "result": json.loads(json.dumps(fn(), default=str))}
    except Exception as e:
        return {"ok": False, "error": type(e).__name__ + ": " + str(e)}

@app.get("/whoami")
def whoami():
    return {"db": db.name}

@app.get("/own")
def own():
    def work():
        db.notes.insert_one({"text": "mine"})
        db.notes.insert_many([{"i": i} for i in range(30)])
        db.notes.update_one({"text": "mine"}, {"$set": {"seen": True}})
        found = list(db.notes.find({}, batch_size=5))
        n = db.notes.count_documents({})
        agg = list(db.notes.aggregate([{"$match": {"i": {"$gte": 10}}}, {"$count": "n"}]))
        db.notes.create_index("i")
        db.notes.delete_many({"i": {"$gte": 0}})
        names = client.list_database_names()
        return {"found": len(found), "count": n, "agg": agg[0]["n"], "names": names}
    return attempt(work)

@app.get("/secret")
def secret():
    return attempt(lambda: str(db.secrets.insert_one({"secret": "of " + db.name}).inserted_id))

@app.get("/try/{what}")
def try_(what: str, other: str = ""):
    o = client[other] if other else None
    ops = {
        "find": lambda: o.secrets.find_one(),
        "insert": lambda: str(o.secrets.insert_one({"evil": 1}).inserted_id),
        "update": lambda: o.secrets.update_many({}, {"$set": {"evil": 1}}).modified_count,
        "delete": lambda: o.secrets.delete_many({}).deleted_count,
        "drop_database": lambda: client.drop_database(other),
        "drop_collection": lambda: o.drop_collection("secrets"),
        "list_collections": lambda: o.list_collection_names(),
        "db_stats": lambda: o.command("dbStats"),
        "count": lambda: o.secrets.count_documents({}),
        "out": lambda: list(db.notes.aggregate([{"$out": {"db": other, "coll": "pwned"}}])),
        "merge": lambda: list(db.notes.aggregate([{"$merge": {"into": {"db": other, "coll": "pwned"}}}])),
        "lookup": lambda: list(db.notes.aggregate([{"$lookup": {"from": {"db": other, "coll": "secrets"}, "as": "x", "pipeline": []}}])),
        "union_with": lambda: list(db.notes.aggregate([{"$unionWith": {"db": other, "coll": "secrets"}}])),
        "rename_from": lambda: client.admin.command("renameCollection", other + ".secrets", to=db.name + ".loot"),
        "rename_to": lambda: client.admin.command("renameCollection", db.name + ".secrets", to=other + ".stolen"),
        "platform_db": lambda: client["gofastapi"].users.find_one(),
        "create_database": lambda: str(client["brand_new_db"].x.insert_one({"a": 1}).inserted_id),
        "current_op": lambda: client.admin.command("currentOp"),
        "server_status": lambda: client.admin.command("serverStatus"),
        "copydb": lambda: client.admin.command("copydb", fromdb=other, todb=db.name),
        "create_user": lambda: client.admin.command("createUser", "x", pwd="y", roles=[]),
        "get_log": lambda: client.admin.command("getLog", "global"),
        "explain": lambda: o.command("explain", {"find": "secrets"}),
        "cursor_scan": lambda: sum(1 for i in range(1, 300) if ok_getmore(i)),
        "list_databases": lambda: client.list_database_names(),
    }
    return attempt(ops[what])

def ok_getmore(i):
    try:
        db.command("getMore", i, collection="secrets")
        return True
    except Exception:
        return False

@app.get("/env")
def env():
    return {"uid": os.getuid(), "gid": os.getgid(), "keys": sorted(os.environ)}

def platform_tree(root):
    """The pids of root and its descendants."""
    parent = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    parent[int(pid)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, grew = {root}, True
    while grew:
        grew = False
        for pid, ppid in parent.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return tree

@app.get("/spy")
def spy(data: str, markers: str, tree_markers: str, root: int):
    """Tries to reach the platform's files and to find markers in what /proc
    shows: markers (another app's secrets) in any process, tree_markers
    (the platform's) in the platform's processes."""
    import glob, socket
    out = {"denied": [], "allowed": [], "hits": [], "readable_foreign_environ": 0}
    def tryit(name, fn):
        try:
            fn()
            out["allowed"].append(name)
        except PermissionError:
            out["denied"].append(name)
        except FileNotFoundError:
            out["denied"].append(name + " (not found)")
        except OSError as e:
            out["denied"].append(name + ": " + str(e))
    tryit("list data dir", lambda: os.listdir(data))
    for f in ("secret.key", "mongo.sock", "api.sock", "ferretdb"):
        tryit("open " + f, lambda f=f: open(os.path.join(data, f), "rb").read(1))
    def connect(path):
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
        finally:
            s.close()
    tryit("connect mongo.sock", lambda: connect(os.path.join(data, "mongo.sock")))
    tryit("connect api.sock", lambda: connect(os.path.join(data, "api.sock")))
    for d in glob.glob("/dev/shm/gofastapi-*") + glob.glob("/tmp/gofastapi-runners-*"):
        tryit("list " + d, lambda d=d: os.listdir(d))
    anywhere = [m for m in markers.split(",") if m]
    in_tree = [m for m in tree_markers.split(",") if m]
    tree = platform_tree(root)
    out["platform_processes"] = len(tree)
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        for part in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{part}", "rb") as fh:
                    text = fh.read().decode("utf-8", "replace")
            except OSError:
                continue
            if part == "environ":
                try:
                    if os.stat(f"/proc/{pid}").st_uid != os.getuid():
                        out["readable_foreign_environ"] += 1
                except OSError:
                    pass
            for m in anywhere + (in_tree if int(pid) in tree else []):
                if m in text:
                    out["hits"].append(f"{m} in /proc/{pid}/{part}")
    return out

@app.get("/fill")
def fill():
    def work():
        for i in range(400):
            db.big.insert_one({"blob": "x" * 4000})
        return "never refused"
    return attempt(work)

@app.get("/clear")
def clear():
    return attempt(lambda: db.drop_collection("big") and None)

@app.get("/slow")
def slow():
    return attempt(lambda: list(db.slow.aggregate([{"$unwind": "$a"}, {"$count": "n"}])))

@app.get("/conns")
def conns():
    errors = []
    clients = [MongoClient(uri, serverSelectionTimeoutMS=3000) for _ in range(6)]
    for c in clients:
        try:
            c.get_default_database().command("ping")
            c.get_default_database().notes.find_one()
        except Exception as e:
            errors.append(str(e))
    for c in clients:
        c.close()
    return {"errors": errors}
`

// dbClient returns a DatabaseService client acting with token.
func (p *platform) dbClient(token string) gofastapiv1connect.DatabaseServiceClient {
	return gofastapiv1connect.NewDatabaseServiceClient(http.DefaultClient, p.url(), connect.WithInterceptors(bearer(token)))
}

// eventually GETs path from app slug until the body contains want, for up
// to 10 s, and returns the last body.
func (p *platform) eventually(t *testing.T, slug, path, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := p.get(slug, path)
		if strings.Contains(body, want) || time.Now().After(deadline) {
			return body
		}
		time.Sleep(50 * time.Millisecond) // polling for a route change to arrive, not waiting for readiness
	}
}

// outcome is what dbApp reports for one attempt.
type outcome struct {
	OK     bool            `json:"ok"`
	Result json.RawMessage `json:"result"`
	Error  string          `json:"error"`
}

func (p *platform) attempt(t *testing.T, slug, path string) outcome {
	t.Helper()
	code, body := p.get(slug, path)
	if code != 200 {
		t.Fatalf("GET %s%s: %d %s\nserver log:\n%s", slug, path, code, body, p.logs)
	}
	var o outcome
	if err := json.Unmarshal([]byte(body), &o); err != nil {
		t.Fatalf("GET %s%s: %v: %s", slug, path, err, body)
	}
	return o
}

// TestDatabaseIsolation deploys an app for each of two users and has
// alice's app try every way into bob's database it can, with pymongo from
// inside its runner; each is refused, while each app's own work succeeds.
// It then drives the limits with small values, rotation, database
// management, the data browser and the data viewer.
func TestDatabaseIsolation(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	data := t.TempDir()
	p := startPlatform(t, data, t.TempDir(), "--warm", "1", "--db-query-timeout", "500ms", "--db-max-conns-per-user", "4",
		"--signin-rate-per-address", "0", "--signin-rate-per-user", "0")
	ctx := context.Background()
	rootTok, _ := p.signup(t, "root", "root password")
	aliceTok, _ := p.signup(t, "alice", "alice password")
	bobTok, _ := p.signup(t, "bob", "bob password")
	// A small quota for alice, set before her app first connects.
	if _, err := p.as(rootTok).admin.SetLimits(ctx, connect.NewRequest(&v1.SetLimitsRequest{User: "alice", StorageBytes: proto.Int64(400 << 10)})); err != nil {
		t.Fatal(err)
	}
	// The spy endpoint uses socket and glob, which the default allowlist
	// lacks: the validator is no boundary, the sandbox is.
	if _, err := p.as(rootTok).admin.UpdateSettings(ctx, connect.NewRequest(&v1.UpdateSettingsRequest{AddImports: []string{"socket", "glob"}})); err != nil {
		t.Fatal(err)
	}
	p.deploy(t, aliceTok, "alice-app", dbApp)
	p.deploy(t, bobTok, "bob-app", dbApp)

	var who struct{ DB string }
	_, body := p.get("bob-app", "/whoami")
	json.Unmarshal([]byte(body), &who)
	bobDB := who.DB
	_, body = p.get("alice-app", "/whoami")
	json.Unmarshal([]byte(body), &who)
	aliceDB := who.DB
	if !strings.HasPrefix(bobDB, "bob_") || !strings.HasPrefix(aliceDB, "alice_") {
		t.Fatalf("default databases %q and %q, want bob_... and alice_...", bobDB, aliceDB)
	}
	if o := p.attempt(t, "bob-app", "/secret"); !o.OK {
		t.Fatalf("bob's own insert: %s", o.Error)
	}

	t.Run("own work succeeds", func(t *testing.T) {
		o := p.attempt(t, "alice-app", "/own")
		if !o.OK {
			t.Fatalf("alice's own work: %s", o.Error)
		}
		var r struct {
			Found, Count, Agg int
			Names             []string
		}
		json.Unmarshal(o.Result, &r)
		if r.Found != 31 || r.Count != 31 || r.Agg != 20 {
			t.Errorf("own work = %+v, want 31 found, 31 counted, 20 aggregated", r)
		}
		if len(r.Names) != 1 || r.Names[0] != aliceDB {
			t.Errorf("alice lists databases %v, want only [%s]", r.Names, aliceDB)
		}
	})

	t.Run("cross-user attempts are refused", func(t *testing.T) {
		for _, what := range []string{"find", "insert", "update", "delete", "drop_database", "drop_collection",
			"list_collections", "db_stats", "count", "out", "merge", "lookup", "union_with", "rename_from", "rename_to",
			"platform_db", "create_database", "current_op", "server_status", "copydb", "create_user", "get_log", "explain"} {
			o := p.attempt(t, "alice-app", "/try/"+what+"?other="+url.QueryEscape(bobDB))
			if o.OK {
				t.Errorf("%s against bob's database succeeded: %s", what, o.Result)
				continue
			}
			if !strings.Contains(o.Error, "not authorized") && !strings.Contains(o.Error, "not available") && !strings.Contains(o.Error, "not allowed") {
				t.Errorf("%s: refused with %q, want an authorization error", what, o.Error)
			}
		}
		// Guessing cursor ids finds nothing: FerretDB's are sequential.
		if o := p.attempt(t, "alice-app", "/try/cursor_scan"); !o.OK || string(o.Result) != "0" {
			t.Errorf("getMore over cursor ids 1-299: %s %s, want 0 successes", o.Result, o.Error)
		}
		o := p.attempt(t, "alice-app", "/try/list_databases")
		if !o.OK || strings.Contains(string(o.Result), "bob") || strings.Contains(string(o.Result), "gofastapi") {
			t.Errorf("listDatabases from alice: %s %s", o.Result, o.Error)
		}
		// Bob's data is intact.
		if o := p.attempt(t, "bob-app", "/try/count?other="+bobDB); !o.OK || string(o.Result) != "1" {
			t.Errorf("bob's secrets after alice's attempts: %s %s, want 1", o.Result, o.Error)
		}
	})

	t.Run("side channels", func(t *testing.T) {
		// A secret of bob's app, in the environment of its runner.
		if _, err := p.as(bobTok).apps.SetEnv(ctx, connect.NewRequest(&v1.SetEnvRequest{IdOrName: "bob-app",
			Vars: []*v1.EnvAssignment{{Name: "BOB_SECRET", Value: "sekrit-of-bob-42", Secret: true}}})); err != nil {
			t.Fatal(err)
		}
		if o := p.attempt(t, "bob-app", "/try/count?other="+bobDB); !o.OK {
			t.Fatalf("bob's app after setting a secret: %s", o.Error)
		}
		var env struct {
			UID, GID int
			Keys     []string
		}
		_, body := p.get("alice-app", "/env")
		json.Unmarshal([]byte(body), &env)
		if os.Geteuid() == 0 && (env.UID == 0 || env.GID == 0) {
			t.Errorf("alice's app runs as uid %d gid %d with the platform as root, want an unprivileged user", env.UID, env.GID)
		}
		for _, k := range env.Keys {
			if strings.Contains(strings.ToUpper(k), "REDIS") || k == "BOB_SECRET" {
				t.Errorf("alice's app has %s in its environment", k)
			}
		}
		// Bob's secret must show nowhere; the Redis URL and password
		// nowhere in the platform's processes (other programs on this
		// machine, such as other tests passing --redis-url, are not ours).
		q := url.Values{"data": {data}, "markers": {"sekrit-of-bob-42"}, "tree_markers": {"redis://,requirepass"},
			"root": {fmt.Sprint(p.cmd.Process.Pid)}}
		_, body = p.get("alice-app", "/spy?"+q.Encode())
		var spy struct {
			Denied, Allowed, Hits  []string
			ReadableForeignEnviron int `json:"readable_foreign_environ"`
			PlatformProcesses      int `json:"platform_processes"`
		}
		if err := json.Unmarshal([]byte(body), &spy); err != nil {
			t.Fatalf("spy: %v: %s", err, body)
		}
		t.Logf("alice's app runs as %d:%d; spy: %+v", env.UID, env.GID, spy)
		if os.Geteuid() != 0 {
			t.Skipf("not root: runners run as the platform's user (spy saw %+v)", spy)
		}
		if len(spy.Allowed) > 0 {
			t.Errorf("alice's app could: %v", spy.Allowed)
		}
		if len(spy.Denied) < 6 {
			t.Errorf("spy tried too little: denied %v", spy.Denied)
		}
		if len(spy.Hits) > 0 {
			t.Errorf("alice's app found secrets in /proc: %v", spy.Hits)
		}
		if spy.PlatformProcesses < 4 {
			t.Errorf("spy saw %d platform processes, want the platform, redis-server, agents, Pythons", spy.PlatformProcesses)
		}
		if spy.ReadableForeignEnviron > 0 {
			t.Errorf("alice's app read the environment of %d processes of other users", spy.ReadableForeignEnviron)
		}
	})

	t.Run("storage quota", func(t *testing.T) {
		o := p.attempt(t, "alice-app", "/fill")
		if o.OK || !strings.Contains(o.Error, "storage quota exceeded") {
			t.Fatalf("filling past a 400 KB quota: ok=%v %s %s", o.OK, o.Result, o.Error)
		}
		if o := p.attempt(t, "alice-app", "/try/count?other="+aliceDB); !o.OK {
			t.Errorf("reading over quota: %s", o.Error)
		}
		if o := p.attempt(t, "alice-app", "/clear"); !o.OK {
			t.Fatalf("clear: %s", o.Error)
		}
		if o := p.attempt(t, "alice-app", "/secret"); !o.OK {
			t.Errorf("insert after freeing: %s", o.Error)
		}
	})

	t.Run("query time limit", func(t *testing.T) {
		// The data is written straight to the store, as only the
		// platform can: the write itself would pass the limit.
		store, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + url.PathEscape(filepath.Join(data, "mongo.sock"))))
		if err != nil {
			t.Fatal(err)
		}
		defer store.Disconnect(ctx)
		arr := make(bson.A, 100000)
		for i := range arr {
			arr[i] = i
		}
		for range 4 {
			if _, err := store.Database(bobDB).Collection("slow").InsertOne(ctx, bson.M{"a": arr}); err != nil {
				t.Fatal(err)
			}
		}
		// 400,000 documents unwound and counted: seconds in the store.
		o := p.attempt(t, "bob-app", "/slow")
		if o.OK || !strings.Contains(o.Error, "time limit") {
			t.Fatalf("a long aggregation under a 500 ms limit: ok=%v %s %s", o.OK, o.Result, o.Error)
		}
		if o := p.attempt(t, "bob-app", "/try/count?other="+bobDB); !o.OK {
			t.Errorf("a quick query after the slow one: %s", o.Error)
		}
	})

	t.Run("connection limit", func(t *testing.T) {
		code, body := p.get("bob-app", "/conns")
		if code != 200 || !strings.Contains(body, "connection limit reached") {
			t.Fatalf("6 clients under a limit of 4: %d %s", code, body)
		}
		if o := p.attempt(t, "bob-app", "/try/count?other="+bobDB); !o.OK {
			t.Errorf("after the extra clients closed: %s", o.Error)
		}
	})

	alice := p.dbClient(aliceTok)
	t.Run("rotation restarts the apps with new credentials", func(t *testing.T) {
		res, err := alice.RotateCredentials(ctx, connect.NewRequest(&v1.RotateCredentialsRequest{}))
		if err != nil || res.Msg.GetRestartedApps() != 1 {
			t.Fatalf("rotate: %v %v", res, err)
		}
		// The restart reaches the gateway over Redis pub/sub: poll until
		// the app (a new runner with the new password) writes again.
		if body := p.eventually(t, "alice-app", "/secret", `"ok":true`); !strings.Contains(body, `"ok":true`) {
			t.Errorf("alice's app after rotation: %s", body)
		}
	})

	t.Run("databases per app, rename, default, delete rules", func(t *testing.T) {
		cr, err := alice.CreateDatabase(ctx, connect.NewRequest(&v1.CreateDatabaseRequest{Name: "second"}))
		if err != nil {
			t.Fatal(err)
		}
		second := cr.Msg.GetDatabase()
		if _, err := alice.SetAppDatabase(ctx, connect.NewRequest(&v1.SetAppDatabaseRequest{App: "alice-app", Database: "second"})); err != nil {
			t.Fatal(err)
		}
		// The restart reaches the gateway over Redis pub/sub: poll.
		if body := p.eventually(t, "alice-app", "/whoami", second.GetStoreName()); !strings.Contains(body, second.GetStoreName()) {
			t.Errorf("alice-app after choosing second: %s, want %s", body, second.GetStoreName())
		}
		if _, err := alice.RenameDatabase(ctx, connect.NewRequest(&v1.RenameDatabaseRequest{Database: "second", NewName: "orders"})); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.DeleteDatabase(ctx, connect.NewRequest(&v1.DeleteDatabaseRequest{Database: "orders"})); connect.CodeOf(err) != connect.CodeFailedPrecondition ||
			!strings.Contains(err.Error(), "database orders is used by app alice-app: choose another database for them first") {
			t.Errorf("delete a database an app uses: %v, want FailedPrecondition naming the app", err)
		}
		if _, err := p.dbClient(bobTok).GetDatabase(ctx, connect.NewRequest(&v1.GetDatabaseRequest{Database: second.GetId()})); connect.CodeOf(err) != connect.CodeNotFound {
			t.Errorf("bob describes alice's database: %v, want NotFound", err)
		}
		if _, err := alice.SetAppDatabase(ctx, connect.NewRequest(&v1.SetAppDatabaseRequest{App: "alice-app"})); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.DeleteDatabase(ctx, connect.NewRequest(&v1.DeleteDatabaseRequest{Database: "orders"})); err != nil {
			t.Errorf("delete an unused database: %v", err)
		}
		if _, err := alice.DeleteDatabase(ctx, connect.NewRequest(&v1.DeleteDatabaseRequest{Database: "default"})); connect.CodeOf(err) != connect.CodeFailedPrecondition {
			t.Errorf("delete the last database: %v, want FailedPrecondition", err)
		}
		list, err := alice.ListDatabases(ctx, connect.NewRequest(&v1.ListDatabasesRequest{}))
		if err != nil || len(list.Msg.GetDatabases()) != 1 || list.Msg.GetQuotaBytes() != 400<<10 || list.Msg.GetMaxDatabases() != 10 {
			t.Errorf("list after deleting: %v %v", list, err)
		}
	})

	t.Run("data browser", func(t *testing.T) {
		ins, err := alice.InsertDocument(ctx, connect.NewRequest(&v1.InsertDocumentRequest{Database: "default", Collection: "people", Document: `{"_id": "ann", "age": 41}`}))
		if err != nil || ins.Msg.GetId() != `"ann"` {
			t.Fatalf("insert: %v %v", ins, err)
		}
		alice.InsertDocument(ctx, connect.NewRequest(&v1.InsertDocumentRequest{Database: "default", Collection: "people", Document: `{"_id": "bo", "age": 7}`}))
		found, err := alice.FindDocuments(ctx, connect.NewRequest(&v1.FindDocumentsRequest{Database: "default", Collection: "people", Filter: `{"age": {"$gt": 10}}`}))
		if err != nil || found.Msg.GetTotal() != 1 || len(found.Msg.GetDocuments()) != 1 || !strings.Contains(found.Msg.GetDocuments()[0], `"ann"`) {
			t.Errorf("find age > 10: %v %v", found, err)
		}
		page, err := alice.FindDocuments(ctx, connect.NewRequest(&v1.FindDocumentsRequest{Database: "default", Collection: "people", Sort: `{"age": 1}`, Limit: 1, Skip: 1}))
		if err != nil || page.Msg.GetTotal() != 2 || len(page.Msg.GetDocuments()) != 1 || !strings.Contains(page.Msg.GetDocuments()[0], `"ann"`) {
			t.Errorf("second page by age: %v %v", page, err)
		}
		if _, err := alice.UpdateDocument(ctx, connect.NewRequest(&v1.UpdateDocumentRequest{Database: "default", Collection: "people", Id: `"ann"`, Document: `{"age": 42}`})); err != nil {
			t.Errorf("update: %v", err)
		}
		got, err := alice.GetDocument(ctx, connect.NewRequest(&v1.GetDocumentRequest{Database: "default", Collection: "people", Id: `"ann"`}))
		if err != nil || !strings.Contains(got.Msg.GetDocument(), "42") {
			t.Errorf("get after update: %v %v", got, err)
		}
		if _, err := alice.DeleteDocument(ctx, connect.NewRequest(&v1.DeleteDocumentRequest{Database: "default", Collection: "people", Id: `"bo"`})); err != nil {
			t.Errorf("delete: %v", err)
		}
		if _, err := alice.FindDocuments(ctx, connect.NewRequest(&v1.FindDocumentsRequest{Database: "default", Collection: "people", Filter: `{not json`})); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("bad filter: %v, want InvalidArgument", err)
		}
		st, err := alice.GetDatabaseStats(ctx, connect.NewRequest(&v1.GetDatabaseStatsRequest{Database: "default"}))
		if err != nil {
			t.Fatal(err)
		}
		var people *v1.CollectionStats
		for _, c := range st.Msg.GetCollections() {
			if c.GetName() == "people" {
				people = c
			}
		}
		if people == nil || people.GetDocuments() != 1 || st.Msg.GetQuotaBytes() != 400<<10 || st.Msg.GetQuotaUsedBytes() <= 0 {
			t.Errorf("stats: %v", st.Msg)
		}
		out := p.user(t)
		out.mustCLI("login", "--username", "alice", "--password", "alice password")
		wantContains(t, "db stats", out.mustCLI("db", "stats", "default"), "people", "COLLECTION")
		wantContains(t, "db list", out.mustCLI("db", "list"), "default", aliceDB)
	})

	t.Run("data viewer", func(t *testing.T) {
		viewer := func(user, pass string) (int, string) {
			req, _ := http.NewRequest("GET", p.url()+"/?db=default&coll=people", nil)
			req.Host = "mongo-alice.localhost:" + p.port
			if user != "" {
				req.SetBasicAuth(user, pass)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			return res.StatusCode, string(b)
		}
		if code, _ := viewer("", ""); code != 401 {
			t.Errorf("viewer without credentials: %d, want 401", code)
		}
		c1, err := alice.RotateViewerCredentials(ctx, connect.NewRequest(&v1.RotateViewerCredentialsRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		if code, body := viewer(c1.Msg.GetUsername(), c1.Msg.GetPassword()); code != 200 || !strings.Contains(body, "ann") {
			t.Errorf("viewer with credentials: %d %s", code, body)
		}
		c2, _ := alice.RotateViewerCredentials(ctx, connect.NewRequest(&v1.RotateViewerCredentialsRequest{}))
		if code, _ := viewer(c1.Msg.GetUsername(), c1.Msg.GetPassword()); code != 401 {
			t.Errorf("old viewer credentials after rotation: %d, want 401", code)
		}
		if code, _ := viewer(c2.Msg.GetUsername(), c2.Msg.GetPassword()); code != 200 {
			t.Errorf("new viewer credentials: %d, want 200", code)
		}
		b, _ := p.dbClient(bobTok).RotateViewerCredentials(ctx, connect.NewRequest(&v1.RotateViewerCredentialsRequest{}))
		if code, _ := viewer(b.Msg.GetUsername(), b.Msg.GetPassword()); code != 401 {
			t.Errorf("bob's credentials on alice's viewer: %d, want 401", code)
		}
		if code, _ := viewer("alice", b.Msg.GetPassword()); code != 401 {
			t.Errorf("bob's password as alice on alice's viewer: %d, want 401", code)
		}
	})

	t.Run("deleting a user removes their databases", func(t *testing.T) {
		if _, err := p.as(rootTok).admin.DeleteUser(ctx, connect.NewRequest(&v1.DeleteUserRequest{User: "bob"})); err != nil {
			t.Fatal(err)
		}
		store, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + url.PathEscape(filepath.Join(data, "mongo.sock"))))
		if err != nil {
			t.Fatal(err)
		}
		defer store.Disconnect(ctx)
		names, err := store.ListDatabaseNames(ctx, bson.M{})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if n == bobDB {
				t.Errorf("bob's database %s is still in the store", n)
			}
		}
	})
}
