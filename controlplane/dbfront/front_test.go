package dbfront

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gofastapi/gofastapi/controlplane/embedded"
)

// accounts is a hand-written Accounts.
type accounts struct {
	mu sync.Mutex
	m  map[string]*Account
}

func (a *accounts) Account(_ context.Context, name string) (*Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	acc, ok := a.m[name]
	if !ok {
		return nil, ErrNoAccount
	}
	c := *acc
	return &c, nil
}

func (a *accounts) set(acc *Account) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.m[acc.Username] = acc
}

type harness struct {
	front  *Front
	addr   string
	store  *mongo.Client
	accts  *accounts
	direct string
}

var (
	ferretOnce sync.Once
	ferretURI  string
	ferretErr  error
)

// startStore starts one embedded FerretDB for the package's tests.
func startStore(t *testing.T) string {
	ferretOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dbfront-test-")
		if err != nil {
			ferretErr = err
			return
		}
		f, err := embedded.StartFerret(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			ferretErr = err
			return
		}
		ferretURI = f.URI()
	})
	if ferretErr != nil {
		t.Fatal(ferretErr)
	}
	return ferretURI
}

func newHarness(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	uri := startStore(t)
	store, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Disconnect(context.Background()) })
	sock := strings.TrimSuffix(strings.TrimPrefix(uri, "mongodb://"), "/")
	sock = strings.ReplaceAll(sock, "%2F", "/")
	accts := &accounts{m: map[string]*Account{}}
	cfg := Config{
		Dial: func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		Accounts: accts, Sizer: StoreSizer{Client: store},
		QueryTimeout: 5 * time.Second, MaxConnsPerUser: 20, MaxPending: 100,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	f, addr := serveFront(t, cfg)
	return &harness{front: f, addr: addr, store: store, accts: accts, direct: uri}
}

// serveFront starts a front with cfg on a loopback port, stopped when the
// test ends, and returns it and its address.
func serveFront(t *testing.T, cfg Config) (*Front, string) {
	t.Helper()
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go f.Serve(l)
	t.Cleanup(func() { l.Close(); f.Close() })
	return f, l.Addr().String()
}

// connect returns a client through the front as user with password.
func (h *harness) connect(t *testing.T, user, password, db string) *mongo.Client {
	t.Helper()
	return connectTo(t, h.addr, user, password, db)
}

// connectTo returns a client of the front at addr as user with password.
func connectTo(t *testing.T, addr, user, password, db string) *mongo.Client {
	t.Helper()
	uri := "mongodb://" + user + ":" + password + "@" + addr + "/" + db + "?authSource=admin&authMechanism=SCRAM-SHA-256&maxPoolSize=2&serverSelectionTimeoutMS=5000"
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	return c
}

func codeOf(err error) int {
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		return int(ce.Code)
	}
	var we mongo.WriteException
	if errors.As(err, &we) && len(we.WriteErrors) > 0 {
		return we.WriteErrors[0].Code
	}
	return -1
}

func TestIsolation(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	h.accts.set(&Account{Username: "alice", Password: "alice-pw", Databases: []string{"alice_a1", "alice_a2"}})
	h.accts.set(&Account{Username: "bob", Password: "bob-pw", Databases: []string{"bob_b1"}})
	// Bob's data, written directly to the store.
	bobColl := h.store.Database("bob_b1").Collection("secrets")
	if _, err := bobColl.InsertMany(ctx, []any{bson.M{"_id": 1, "s": "bob's"}, bson.M{"_id": 2}, bson.M{"_id": 3}, bson.M{"_id": 4}}); err != nil {
		t.Fatal(err)
	}
	h.store.Database("gofastapi").Collection("users").InsertOne(ctx, bson.M{"username": "root"})

	alice := h.connect(t, "alice", "alice-pw", "alice_a1")
	bob := h.connect(t, "bob", "bob-pw", "bob_b1")
	a1 := alice.Database("alice_a1")

	// Own work succeeds.
	own := a1.Collection("notes")
	docs := []any{}
	for i := range 10 {
		docs = append(docs, bson.M{"_id": i, "n": i})
	}
	if _, err := own.InsertMany(ctx, docs); err != nil {
		t.Fatalf("own insert: %v", err)
	}
	cur, err := own.Find(ctx, bson.M{}, options.Find().SetBatchSize(3))
	if err != nil {
		t.Fatalf("own find: %v", err)
	}
	var got []bson.M
	if err := cur.All(ctx, &got); err != nil || len(got) != 10 {
		t.Fatalf("own find through getMore: %d docs, %v", len(got), err)
	}
	if _, err := own.UpdateOne(ctx, bson.M{"_id": 1}, bson.M{"$set": bson.M{"x": 1}}); err != nil {
		t.Errorf("own update: %v", err)
	}
	if n, err := own.CountDocuments(ctx, bson.M{}); err != nil || n != 10 {
		t.Errorf("own count = %d, %v", n, err)
	}
	if _, err := own.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "n", Value: 1}}}); err != nil {
		t.Errorf("own createIndexes: %v", err)
	}
	if _, err := own.Aggregate(ctx, mongo.Pipeline{{{Key: "$match", Value: bson.M{"n": bson.M{"$gt": 2}}}}}); err != nil {
		t.Errorf("own aggregate: %v", err)
	}
	if _, err := alice.Database("alice_a2").Collection("x").InsertOne(ctx, bson.M{"a": 1}); err != nil {
		t.Errorf("own second database: %v", err)
	}
	if err := alice.Database("admin").RunCommand(ctx, bson.D{{Key: "renameCollection", Value: "alice_a2.x"}, {Key: "to", Value: "alice_a2.y"}}).Err(); err != nil {
		t.Errorf("own renameCollection: %v", err)
	}
	names, err := alice.ListDatabaseNames(ctx, bson.M{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "alice_") {
			t.Errorf("listDatabases shows %q to alice", n)
		}
	}

	// Bob opens a cursor alice will try to steal.
	bcur, err := bob.Database("bob_b1").Collection("secrets").Find(ctx, bson.M{}, options.Find().SetBatchSize(1))
	if err != nil {
		t.Fatal(err)
	}
	defer bcur.Close(ctx)

	refused := []struct {
		name string
		do   func() error
		code int
	}{
		{"find in another user's database", func() error {
			return alice.Database("bob_b1").Collection("secrets").FindOne(ctx, bson.M{}).Err()
		}, codeUnauthorized},
		{"find in the platform database", func() error {
			return alice.Database("gofastapi").Collection("users").FindOne(ctx, bson.M{}).Err()
		}, codeUnauthorized},
		{"insert into another user's database", func() error {
			_, err := alice.Database("bob_b1").Collection("secrets").InsertOne(ctx, bson.M{"evil": 1})
			return err
		}, codeUnauthorized},
		{"create a database of one's own choosing", func() error {
			_, err := alice.Database("alice_new").Collection("x").InsertOne(ctx, bson.M{"a": 1})
			return err
		}, codeUnauthorized},
		{"drop another user's database", func() error { return alice.Database("bob_b1").Drop(ctx) }, codeUnauthorized},
		{"list another user's collections", func() error {
			_, err := alice.Database("bob_b1").ListCollectionNames(ctx, bson.M{})
			return err
		}, codeUnauthorized},
		{"dbStats of another user's database", func() error {
			return alice.Database("bob_b1").RunCommand(ctx, bson.D{{Key: "dbStats", Value: 1}}).Err()
		}, codeUnauthorized},
		{"$out into another user's database", func() error {
			_, err := own.Aggregate(ctx, mongo.Pipeline{{{Key: "$out", Value: bson.M{"db": "bob_b1", "coll": "pwned"}}}})
			return err
		}, codeUnauthorized},
		{"$merge into another user's database", func() error {
			_, err := own.Aggregate(ctx, mongo.Pipeline{{{Key: "$merge", Value: bson.M{"into": bson.M{"db": "bob_b1", "coll": "pwned"}}}}})
			return err
		}, codeUnauthorized},
		{"$lookup from another user's database", func() error {
			_, err := own.Aggregate(ctx, mongo.Pipeline{{{Key: "$lookup", Value: bson.M{"from": bson.M{"db": "bob_b1", "coll": "secrets"}, "as": "x", "pipeline": bson.A{}}}}})
			return err
		}, codeUnauthorized},
		{"$unionWith nested in $facet", func() error {
			_, err := own.Aggregate(ctx, mongo.Pipeline{{{Key: "$facet", Value: bson.M{"f": bson.A{bson.M{"$unionWith": bson.M{"db": "bob_b1", "coll": "secrets"}}}}}}})
			return err
		}, codeUnauthorized},
		{"$currentOp", func() error {
			_, err := alice.Database("admin").Aggregate(ctx, mongo.Pipeline{{{Key: "$currentOp", Value: bson.M{}}}})
			return err
		}, codeUnauthorized},
		{"renameCollection into another user's database", func() error {
			return alice.Database("admin").RunCommand(ctx, bson.D{{Key: "renameCollection", Value: "alice_a1.notes"}, {Key: "to", Value: "bob_b1.notes"}}).Err()
		}, codeUnauthorized},
		{"renameCollection out of another user's database", func() error {
			return alice.Database("admin").RunCommand(ctx, bson.D{{Key: "renameCollection", Value: "bob_b1.secrets"}, {Key: "to", Value: "alice_a1.loot"}}).Err()
		}, codeUnauthorized},
		{"explain a find in another user's database", func() error {
			return a1.RunCommand(ctx, bson.D{{Key: "explain", Value: bson.D{{Key: "find", Value: "secrets"}}}, {Key: "$db", Value: "bob_b1"}}).Err()
		}, codeUnauthorized},
		{"getMore on another user's cursor", func() error {
			return a1.RunCommand(ctx, bson.D{{Key: "getMore", Value: bcur.ID()}, {Key: "collection", Value: "notes"}}).Err()
		}, codeCursorNotFound},
		{"killCursors on another user's cursor", func() error {
			return a1.RunCommand(ctx, bson.D{{Key: "killCursors", Value: "notes"}, {Key: "cursors", Value: bson.A{bcur.ID()}}}).Err()
		}, codeCursorNotFound},
		{"serverStatus", func() error { return a1.RunCommand(ctx, bson.D{{Key: "serverStatus", Value: 1}}).Err() }, codeCommandNotFound},
		{"createUser", func() error {
			return alice.Database("admin").RunCommand(ctx, bson.D{{Key: "createUser", Value: "x"}, {Key: "pwd", Value: "y"}, {Key: "roles", Value: bson.A{}}}).Err()
		}, codeCommandNotFound},
		{"copydb", func() error {
			return alice.Database("admin").RunCommand(ctx, bson.D{{Key: "copydb", Value: 1}, {Key: "fromdb", Value: "bob_b1"}, {Key: "todb", Value: "alice_a1"}}).Err()
		}, codeCommandNotFound},
		{"getLog", func() error {
			return alice.Database("admin").RunCommand(ctx, bson.D{{Key: "getLog", Value: "global"}}).Err()
		}, codeCommandNotFound},
		{"listDatabases outside admin", func() error {
			return a1.RunCommand(ctx, bson.D{{Key: "listDatabases", Value: 1}}).Err()
		}, codeUnauthorized},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if err == nil {
				t.Fatal("succeeded, want refused")
			}
			if got := codeOf(err); got != tc.code {
				t.Errorf("error code %d (%v), want %d", got, err, tc.code)
			}
		})
	}
	// Bob's data is untouched and his cursor still works.
	var bobDocs []bson.M
	if err := bcur.All(ctx, &bobDocs); err != nil || len(bobDocs) != 4 {
		t.Errorf("bob's cursor after alice's attempts: %d docs, %v", len(bobDocs), err)
	}
	if names, _ := h.store.ListDatabaseNames(ctx, bson.M{"name": "alice_new"}); len(names) != 0 {
		t.Errorf("alice created database %v", names)
	}
	if n, _ := h.store.Database("bob_b1").Collection("pwned").CountDocuments(ctx, bson.M{}); n != 0 {
		t.Errorf("bob_b1.pwned has %d documents", n)
	}
}

func TestAuthentication(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	h.accts.set(&Account{Username: "carol", Password: "right", Databases: []string{"carol_c"}})
	for _, tc := range []struct{ name, user, pw string }{
		{"wrong password", "carol", "wrong"},
		{"unknown user", "mallory", "right"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.connect(t, tc.user, tc.pw, "carol_c")
			err := c.Ping(ctx, nil)
			if err == nil || !strings.Contains(err.Error(), "Authentication failed") {
				t.Errorf("ping = %v, want Authentication failed", err)
			}
		})
	}
	t.Run("no credentials", func(t *testing.T) {
		c, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + h.addr + "/carol_c?serverSelectionTimeoutMS=5000"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Disconnect(ctx)
		if err := c.Database("carol_c").Collection("x").FindOne(ctx, bson.M{}).Err(); codeOf(err) != codeUnauthorized {
			t.Errorf("find without credentials = %v, want Unauthorized", err)
		}
	})
	t.Run("rotation closes old connections", func(t *testing.T) {
		c := h.connect(t, "carol", "right", "carol_c")
		if err := c.Database("carol_c").Collection("x").FindOne(ctx, bson.M{}).Err(); err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			t.Fatal(err)
		}
		h.accts.set(&Account{Username: "carol", Password: "new", Databases: []string{"carol_c"}})
		if err := h.front.Refresh(ctx, "carol"); err != nil {
			t.Fatal(err)
		}
		if err := c.Database("carol_c").Collection("x").FindOne(ctx, bson.M{}).Err(); err == nil || errors.Is(err, mongo.ErrNoDocuments) {
			t.Errorf("old password still works after rotation: %v", err)
		}
		c2 := h.connect(t, "carol", "new", "carol_c")
		if err := c2.Ping(ctx, nil); err != nil {
			t.Errorf("new password: %v", err)
		}
	})
	t.Run("a removed database is refused at once", func(t *testing.T) {
		c := h.connect(t, "carol", "new", "carol_c")
		coll := c.Database("carol_c").Collection("x")
		if _, err := coll.InsertOne(ctx, bson.M{"a": 1}); err != nil {
			t.Fatal(err)
		}
		h.accts.set(&Account{Username: "carol", Password: "new", Databases: []string{"carol_other"}})
		if err := h.front.Refresh(ctx, "carol"); err != nil {
			t.Fatal(err)
		}
		if _, err := coll.InsertOne(ctx, bson.M{"a": 2}); codeOf(err) != codeUnauthorized {
			t.Errorf("insert after removal = %v, want Unauthorized", err)
		}
	})
}

func TestQuota(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	const quota = 96 << 10
	h.accts.set(&Account{Username: "dave", Password: "pw", Databases: []string{"dave_q"}, QuotaBytes: quota})
	c := h.connect(t, "dave", "pw", "dave_q")
	coll := c.Database("dave_q").Collection("big")
	blob := strings.Repeat("x", 4000)
	var quotaErr error
	for i := range 200 {
		if _, err := coll.InsertOne(ctx, bson.M{"_id": i, "b": blob}); err != nil {
			quotaErr = err
			break
		}
	}
	if quotaErr == nil {
		t.Fatal("200 inserts of 4 KB passed a 96 KB quota")
	}
	if codeOf(quotaErr) != codeQuotaExceeded || !strings.Contains(quotaErr.Error(), "storage quota exceeded") {
		t.Fatalf("over quota: %v, want QuotaExceeded", quotaErr)
	}
	// Existing data stays readable.
	if n, err := coll.CountDocuments(ctx, bson.M{}); err != nil || n == 0 {
		t.Errorf("count over quota = %d, %v", n, err)
	}
	// Deleting frees quota.
	if _, err := coll.DeleteMany(ctx, bson.M{}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.InsertOne(ctx, bson.M{"b": blob}); err != nil {
		t.Errorf("insert after deleting everything: %v", err)
	}
}

func TestQueryTimeLimit(t *testing.T) {
	// 250 ms: long enough for the quick work below on a loaded machine,
	// a quarter of what the slow aggregate takes.
	h := newHarness(t, func(c *Config) { c.QueryTimeout = 250 * time.Millisecond })
	ctx := context.Background()
	h.accts.set(&Account{Username: "erin", Password: "pw", Databases: []string{"erin_t"}})
	c := h.connect(t, "erin", "pw", "erin_t")
	coll := c.Database("erin_t").Collection("t")
	arr := make(bson.A, 1000000)
	for i := range arr {
		arr[i] = i
	}
	// Written directly: the write itself may take longer than the limit.
	if _, err := h.store.Database("erin_t").Collection("t").InsertOne(ctx, bson.M{"a": arr}); err != nil {
		t.Fatal(err)
	}
	// 1,000,000 documents unwound and counted: about 1.6 s in the store
	// on this machine without the limit, six times it (100,000 took
	// 250-1000 ms, which on a quiet day was within it).
	cur, err := coll.Aggregate(ctx, mongo.Pipeline{{{Key: "$unwind", Value: "$a"}}, {{Key: "$count", Value: "n"}}})
	if err == nil {
		var res []bson.M
		err = cur.All(ctx, &res)
		t.Logf("result %v", res)
	}
	if codeOf(err) != codeMaxTimeMSExpired || !strings.Contains(err.Error(), "time limit") {
		t.Fatalf("slow aggregate = %v, want MaxTimeMSExpired", err)
	}
	// The connection still serves quick work afterwards.
	small := c.Database("erin_t").Collection("small")
	if _, err := small.InsertOne(ctx, bson.M{"a": 1}); err != nil {
		t.Errorf("quick insert after the time limit: %v", err)
	}
	if err := small.FindOne(ctx, bson.M{}).Err(); err != nil {
		t.Errorf("quick find after the time limit: %v", err)
	}
}

func TestConnectionLimit(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxConnsPerUser = 2 })
	ctx := context.Background()
	h.accts.set(&Account{Username: "frank", Password: "pw", Databases: []string{"frank_c"}})
	var clients []*mongo.Client
	for range 2 {
		c := h.connect(t, "frank", "pw", "frank_c")
		if err := c.Database("frank_c").RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	// Each client holds one authenticated connection (the driver's
	// monitoring connection does not authenticate).
	if n := h.front.Connections("frank"); n != 2 {
		t.Fatalf("frank has %d connections, want 2", n)
	}
	third := h.connect(t, "frank", "pw", "frank_c")
	err := third.Database("frank_c").RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err()
	if err == nil || !strings.Contains(err.Error(), "connection limit") {
		t.Fatalf("third connection: %v, want connection limit", err)
	}
	clients[0].Disconnect(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for h.front.Connections("frank") > 1 {
		if time.Now().After(deadline) {
			t.Fatal("closed connection still counted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := third.Database("frank_c").RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		t.Errorf("after one closed: %v", err)
	}
}

// TestGarbageEndsOnlyItsConnection sends malformed messages and odd types
// where the front reads fields; each at worst ends its own connection, and
// the front keeps serving others.
func TestGarbageEndsOnlyItsConnection(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	h.accts.set(&Account{Username: "gina", Password: "pw", Databases: []string{"gina_g"}})
	cmd := func(d bson.D) []byte {
		b, _ := bson.Marshal(d)
		return (&msg{body: b}).encode()
	}
	for _, tc := range []struct {
		name string
		op   int32
		body []byte
	}{
		{"random bytes", opMsg, []byte("\x00\x01\x02garbage")},
		{"unknown opcode", 9999, []byte{0, 0, 0, 0}},
		{"compressed", opCompressed, []byte{0, 0, 0, 0}},
		{"saslStart with odd types", opMsg, cmd(bson.D{{Key: "saslStart", Value: 1}, {Key: "mechanism", Value: "SCRAM-SHA-256"},
			{Key: "payload", Value: "not binary"}, {Key: "options", Value: "not a document"}, {Key: "$db", Value: "admin"}})},
		{"saslContinue first", opMsg, cmd(bson.D{{Key: "saslContinue", Value: 1}, {Key: "payload", Value: 3}, {Key: "$db", Value: "admin"}})},
		{"no $db", opMsg, cmd(bson.D{{Key: "find", Value: "c"}})},
		{"legacy query of a collection", opQuery, (&query{collection: "gina_g.c", doc: bson.Raw(mustMarshal(bson.D{{Key: "x", Value: 1}}))}).encode()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if err := writeMessage(c, 1, 0, tc.op, tc.body); err != nil {
				t.Fatal(err)
			}
			// A reply or a closed connection: either is fine, a hang is not.
			readMessage(c, maxMessageSize)
		})
	}
	good := h.connect(t, "gina", "pw", "gina_g")
	if _, err := good.Database("gina_g").Collection("c").InsertOne(ctx, bson.M{"ok": 1}); err != nil {
		t.Errorf("a good client after the garbage: %v", err)
	}
}

func mustMarshal(d bson.D) []byte {
	b, err := bson.Marshal(d)
	if err != nil {
		panic(err)
	}
	return b
}
