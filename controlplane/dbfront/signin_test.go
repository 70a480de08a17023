package dbfront

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gofastapi/gofastapi/controlplane/mongousers/mongotest"
)

// lockedBuffer is a log sink the front's goroutines may share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSignInUpstream runs the front in front of a store with users of its
// own (FerretDB with authentication), as with MongoDB's users: each client
// connection must reach the store signed in as the client's user.
func TestSignInUpstream(t *testing.T) {
	srv := mongotest.Start(t)
	ctx := context.Background()
	admin, err := mongo.Connect(options.Client().ApplyURI(srv.AdminURI()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Disconnect(context.Background()) })
	for user, pw := range map[string]string{"alice": "alice-pw", "bob": "stale-pw"} {
		if err := admin.Database("admin").RunCommand(ctx, bson.D{{Key: "createUser", Value: UpstreamUser(user)}, {Key: "pwd", Value: pw}, {Key: "roles", Value: bson.A{}}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	accts := &accounts{m: map[string]*Account{}}
	accts.set(&Account{Username: "alice", Password: "alice-pw", Databases: []string{"alice_a"}})
	accts.set(&Account{Username: "bob", Password: "bob-pw", Databases: []string{"bob_b"}})
	start := func(t *testing.T, signIn bool) (string, *lockedBuffer) {
		logs := &lockedBuffer{}
		_, addr := serveFront(t, Config{
			Dial: func(ctx context.Context) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "tcp", srv.Addr)
			},
			Accounts: accts, Sizer: StoreSizer{Client: admin}, SignInUpstream: signIn,
			QueryTimeout: 5 * time.Second, MaxConnsPerUser: 20, MaxPending: 100,
			Logger: slog.New(slog.NewTextHandler(logs, nil)),
		})
		return addr, logs
	}
	connect := func(t *testing.T, addr, user, pw string) *mongo.Client {
		return connectTo(t, addr, user, pw, user+"_x")
	}

	t.Run("without sign-in the store refuses the front's connections", func(t *testing.T) {
		addr, _ := start(t, false)
		c := connect(t, addr, "alice", "alice-pw")
		if _, err := c.Database("alice_a").Collection("notes").InsertOne(ctx, bson.M{"n": 0}); err == nil {
			t.Fatal("the store took an insert from a connection that did not sign in: this test cannot tell sign-in from none")
		}
	})

	addr, logs := start(t, true)
	t.Run("the account's user reads and writes", func(t *testing.T) {
		c := connect(t, addr, "alice", "alice-pw")
		coll := c.Database("alice_a").Collection("notes")
		if _, err := coll.InsertOne(ctx, bson.M{"n": 1}); err != nil {
			t.Fatalf("insert: %v", err)
		}
		var got bson.M
		if err := coll.FindOne(ctx, bson.M{"n": 1}).Decode(&got); err != nil {
			t.Fatalf("find: %v", err)
		}
		if got["n"] != int32(1) {
			t.Errorf("found %v, want n: 1", got)
		}
	})
	t.Run("a store that refuses the user fails the client's sign-in, clearly", func(t *testing.T) {
		c := connect(t, addr, "bob", "bob-pw")
		err := c.Ping(ctx, nil)
		if err == nil || !strings.Contains(err.Error(), "the platform database accepted the credentials of bob, but its MongoDB server refused them") {
			t.Fatalf("ping = %v, want the front's message on a refused sign-in", err)
		}
		t.Logf("client sees: %v", err)
		t.Logf("operator log:\n%s", logs)
		out := logs.String()
		if !strings.Contains(out, "user=bob") || !strings.Contains(out, "refused") {
			t.Errorf("no log line for the operator about bob:\n%s", out)
		}
		for _, secret := range []string{"bob-pw", "stale-pw"} {
			if strings.Contains(out, secret) || strings.Contains(err.Error(), secret) {
				t.Errorf("a password (%s) leaked into the log or the client's error", secret)
			}
		}
	})
	t.Run("a password changed in the store only is refused", func(t *testing.T) {
		if err := admin.Database("admin").RunCommand(ctx, bson.D{{Key: "updateUser", Value: UpstreamUser("alice")}, {Key: "pwd", Value: "rotated-elsewhere"}}).Err(); err != nil {
			t.Fatal(err)
		}
		c := connect(t, addr, "alice", "alice-pw")
		if err := c.Ping(ctx, nil); err == nil || !strings.Contains(err.Error(), "MongoDB server refused") {
			t.Errorf("ping = %v, want a refused sign-in", err)
		}
	})
}
