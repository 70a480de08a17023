// Package embeddedtest starts the embedded default's real servers for a
// test, each stopped when the test ends: a redis-server, and FerretDB
// with its SQLite backend.
package embeddedtest

import (
	"context"
	"log/slog"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gofastapi/gofastapi/controlplane/embedded"
)

// Redis starts a redis-server and returns it and a client of it.
func Redis(t testing.TB) (*embedded.Redis, *redis.Client) {
	t.Helper()
	rs, err := embedded.StartRedis(context.Background(), "redis-server")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Stop)
	opt, err := redis.ParseURL(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return rs, rdb
}

// Mongo starts FerretDB in a temporary directory and returns a client of
// it.
func Mongo(t testing.TB) *mongo.Client {
	t.Helper()
	f, err := embedded.StartFerret(t.TempDir(), slog.New(slog.DiscardHandler))
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
