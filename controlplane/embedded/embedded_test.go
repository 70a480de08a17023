package embedded

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gofastapi/gofastapi/controlplane/store"
)

func TestFerretStoreRoundTrip(t *testing.T) {
	f, err := StartFerret(t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	ctx := context.Background()
	client, err := mongo.Connect(options.Client().ApplyURI(f.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
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
