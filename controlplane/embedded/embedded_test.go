package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gofastapi/gofastapi/controlplane/store"
)

// startFerret starts a Ferret with its files in dir and connects to it;
// both end with the test.
func startFerret(t *testing.T, dir string) *mongo.Client {
	t.Helper()
	f, err := StartFerret(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	client, err := mongo.Connect(options.Client().ApplyURI(f.URI()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	return client
}

func TestFerretStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	client := startFerret(t, t.TempDir())
	s, err := store.Open(ctx, client, "test")
	if err != nil {
		t.Fatal(err)
	}
	u := &store.User{Username: "alice", PasswordHash: "x"}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if !u.Admin {
		t.Error("first user is not admin")
	}
	u2 := &store.User{Username: "bob", PasswordHash: "x"}
	if err := s.CreateUser(ctx, u2); err != nil || u2.Admin {
		t.Errorf("second user: err %v admin %v, want no error and not admin", err, u2.Admin)
	}
	got, err := s.UserByName(ctx, "alice")
	if err != nil || got.ID != u.ID {
		t.Errorf("UserByName = %+v, %v", got, err)
	}
	a := &store.App{OwnerID: u.ID, Name: "hello"}
	if err := s.CreateApp(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OwnedApp(ctx, u2.ID, "hello"); err != store.ErrNotFound {
		t.Errorf("another user's app: err = %v, want ErrNotFound", err)
	}
	if _, err := s.OwnedApp(ctx, u.ID, a.ID); err != nil {
		t.Errorf("own app by id: %v", err)
	}
}

func TestRedisRunnerUserIsReadOnly(t *testing.T) {
	ctx := context.Background()
	r, err := StartRedis(ctx, "redis-server")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	opt, _ := redis.ParseURL(r.URL())
	admin := redis.NewClient(opt)
	defer admin.Close()
	if err := admin.Set(ctx, "bundle:abc", "data", 0).Err(); err != nil {
		t.Fatal(err)
	}
	admin.Set(ctx, "route:x", "secret", 0)
	admin.Set(ctx, "compiled:abc", "pyc", 0)
	ru, err := RunnerUser(ctx, admin, r.URL())
	if err != nil {
		t.Fatal(err)
	}
	opt, _ = redis.ParseURL(ru)
	runner := redis.NewClient(opt)
	defer runner.Close()
	if v, err := runner.Get(ctx, "bundle:abc").Result(); err != nil || v != "data" {
		t.Errorf("runner GET bundle = %q, %v", v, err)
	}
	if v, err := runner.Get(ctx, "compiled:abc").Result(); err != nil || v != "pyc" {
		t.Errorf("runner GET compiled = %q, %v", v, err)
	}
	if err := runner.Set(ctx, "bundle:abc", "evil", 0).Err(); err == nil {
		t.Error("runner could SET a bundle")
	}
	if err := runner.Set(ctx, "compiled:abc", "evil", 0).Err(); err == nil {
		t.Error("runner could SET compiled modules")
	}
	if err := runner.Get(ctx, "route:x").Err(); err == nil {
		t.Error("runner could read a non-bundle key")
	}
	if err := runner.Do(ctx, "KEYS", "*").Err(); err == nil {
		t.Error("runner could list keys")
	}
}

// TestIDLookupsUseAnIndex checks that lookups by _id in the embedded store
// search an index instead of scanning the collection: FerretDB's own _id
// index does not match its lookups (see indexIDs), so the platform adds one
// to every collection as it appears, and again if it goes.
func TestIDLookupsUseAnIndex(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	client := startFerret(t, dir)
	coll := client.Database("app1").Collection("things")
	oid := bson.NewObjectID()
	docs := []any{bson.D{{Key: "_id", Value: oid}, {Key: "n", Value: 0}}}
	for i := 1; i < 200; i++ {
		docs = append(docs, bson.D{{Key: "_id", Value: fmt.Sprintf("thing-%d", i)}, {Key: "n", Value: i}})
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	// An index of the app's own, named like the platform's.
	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "n", Value: 1}}, Options: options.Index().SetName("gofastapi:id:x")}); err != nil {
		t.Fatalf("the app's own index: %v", err)
	}

	file := filepath.Join(dir, "ferretdb", "app1.sqlite")
	// plan is how SQLite runs FerretDB's lookup by _id, on a connection of
	// its own: one that read the schema before the index was added would
	// explain the statement by the schema it read.
	var table string
	plan := func() string {
		t.Helper()
		db, err := sql.Open("sqlite", "file:"+file+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.QueryRow(`SELECT table_name FROM _ferretdb_collections WHERE name = 'things'`).Scan(&table); err != nil {
			t.Fatal(err)
		}
		var id, parent, unused int
		var detail string
		q := fmt.Sprintf(`EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM %q WHERE %s = ?`, table, idColumn)
		if err := db.QueryRow(q, `"thing-7"`).Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		return detail
	}
	plan()
	indexed := func() {
		t.Helper()
		want := fmt.Sprintf("SEARCH %s USING INDEX %s%s", table, idIndexPrefix, table)
		deadline := time.Now().Add(3 * indexEvery)
		for !strings.HasPrefix(plan(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("FerretDB's lookup by _id: %q, want %q", plan(), want)
			}
			time.Sleep(20 * time.Millisecond) // the indexer's next sweep
		}
	}
	indexed()

	// Without it the same lookup scans the table; a sweep adds it again.
	rw, err := sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	if _, err := rw.Exec(fmt.Sprintf(`DROP INDEX %q`, idIndexPrefix+table)); err != nil {
		t.Fatal(err)
	}
	if p := plan(); !strings.HasPrefix(p, "SCAN") {
		t.Fatalf("without the platform's index the lookup plan is %q, want a SCAN", p)
	}
	indexed()

	// Lookups answer as before, and the app sees only its own indexes.
	var got bson.M
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "thing-7"}}).Decode(&got); err != nil || got["n"] != int32(7) {
		t.Errorf("find thing-7: %v, %v", got, err)
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: oid}}).Decode(&got); err != nil || got["n"] != int32(0) {
		t.Errorf("find by ObjectID: %v, %v", got, err)
	}
	specs, err := coll.Indexes().ListSpecifications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "_id_,gofastapi:id:x" {
		t.Errorf("the app's indexes: %v, want _id_ and its own", names)
	}
	if err := coll.Drop(ctx); err != nil {
		t.Fatalf("drop the collection: %v", err)
	}
}

// TestIndexIDsLeavesDroppedDatabasesGone checks that indexing a database
// file dropped meanwhile neither fails nor makes the file again.
func TestIndexIDsLeavesDroppedDatabasesGone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gone.sqlite")
	if n, err := indexIDs(context.Background(), path); n != 0 || err != nil {
		t.Errorf("indexIDs of a dropped database = %d, %v; want 0, nil", n, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("indexIDs made %s again: %v", path, err)
	}
}
