package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gofastapi/gofastapi/controlplane/dbfront"
	"github.com/gofastapi/gofastapi/controlplane/mongousers/mongotest"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// TestDatabaseMongoUsers runs the platform on an external server with real
// users (FerretDB with authentication, behind a RolesProxy that records the
// roles FerretDB lacks) and turns --db-mongo-users on for an installation
// that already has a database account: the account's MongoDB user is
// created at start, the app (pymongo through the front, which signs in as
// the app's owner) reads and writes, the roles follow the databases,
// rotation rewrites the password MongoDB checks, and deleting the user
// drops it.
func TestDatabaseMongoUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	srv := mongotest.Start(t)
	proxy := srv.StartRolesProxy(t)
	ctx := context.Background()
	admin, err := mongo.Connect(options.Client().ApplyURI(srv.AdminURI()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Disconnect(context.Background()) })
	users := func(name string) int {
		t.Helper()
		var res struct{ Users []bson.M }
		if err := admin.Database("admin").RunCommand(ctx, bson.D{{Key: "usersInfo", Value: dbfront.UpstreamUser(name)}}).Decode(&res); err != nil {
			t.Fatalf("usersInfo %s: %v", name, err)
		}
		return len(res.Users)
	}
	seen := 0
	// sent checks the user commands the platform sent since the last call.
	sent := func(t *testing.T, want ...mongotest.UserCommand) {
		t.Helper()
		all := proxy.Commands()
		if diff := cmp.Diff(want, all[seen:]); diff != "" {
			t.Errorf("user commands sent (-want +got):\n%s", diff)
		}
		seen = len(all)
	}
	readWrite := func(dbs ...string) []string {
		var r []string
		for _, d := range slices.Sorted(slices.Values(dbs)) {
			r = append(r, "readWrite@"+d)
		}
		return r
	}
	data, home := t.TempDir(), t.TempDir()
	args := []string{"--warm", "1", "--mongo-uri", proxy.AdminURI(), "--signin-rate-per-address", "0", "--signin-rate-per-user", "0"}

	// Without the mode: alice's app has a database account (provisioned
	// at its start), and MongoDB no user of hers.
	p := startPlatform(t, data, home, args...)
	rootTok, _ := p.signup(t, "root", "root password")
	aliceTok, _ := p.signup(t, "alice", "alice password")
	// dbApp's /spy needs socket and glob, which the default allowlist lacks.
	if _, err := p.as(rootTok).admin.UpdateSettings(ctx, connect.NewRequest(&v1.UpdateSettingsRequest{AddImports: []string{"socket", "glob"}})); err != nil {
		t.Fatal(err)
	}
	p.deploy(t, aliceTok, "alice-app", dbApp)
	// The front forwards without signing in, which a server with users
	// refuses: that is what the mode is for.
	if o := p.attempt(t, "alice-app", "/secret"); o.OK || !strings.Contains(o.Error, "requires authentication") {
		t.Fatalf("alice's app without the mode: %+v, want the server to refuse an unauthenticated insert\n%s", o, p.logs)
	}
	var who struct{ DB string }
	_, body := p.get("alice-app", "/whoami")
	json.Unmarshal([]byte(body), &who)
	aliceDB := who.DB
	if users("alice") != 0 {
		t.Fatal("MongoDB has a user alice without the mode")
	}
	sent(t)
	p.stop()

	p = startPlatform(t, data, home, append(args, "--db-mongo-users")...)
	if n := users("alice"); n != 1 {
		t.Fatalf("MongoDB has %d users alice after a start with the mode, want 1\n%s", n, p.logs)
	}
	sent(t,
		mongotest.UserCommand{Verb: "updateUser", User: "gofastapi.alice", Roles: readWrite(aliceDB)}, // none yet
		mongotest.UserCommand{Verb: "createUser", User: "gofastapi.alice", Roles: readWrite(aliceDB)})
	t.Run("the app reads and writes as its owner", func(t *testing.T) {
		o := p.attempt(t, "alice-app", "/own")
		if !o.OK {
			t.Fatalf("alice's own work: %s\n%s", o.Error, p.logs)
		}
		if !strings.Contains(string(o.Result), `"count":31`) {
			t.Errorf("own work = %s, want 31 documents counted", o.Result)
		}
	})
	alice := p.dbClient(aliceTok)
	t.Run("the roles follow the databases", func(t *testing.T) {
		cr, err := alice.CreateDatabase(ctx, connect.NewRequest(&v1.CreateDatabaseRequest{Name: "second"}))
		if err != nil {
			t.Fatal(err)
		}
		second := cr.Msg.GetDatabase().GetStoreName()
		sent(t, mongotest.UserCommand{Verb: "updateUser", User: "gofastapi.alice", Roles: readWrite(aliceDB, second)})
		if _, err := alice.DeleteDatabase(ctx, connect.NewRequest(&v1.DeleteDatabaseRequest{Database: "second"})); err != nil {
			t.Fatal(err)
		}
		sent(t, mongotest.UserCommand{Verb: "updateUser", User: "gofastapi.alice", Roles: readWrite(aliceDB)})
	})
	t.Run("rotation rewrites the password MongoDB checks", func(t *testing.T) {
		res, err := alice.RotateCredentials(ctx, connect.NewRequest(&v1.RotateCredentialsRequest{}))
		if err != nil || res.Msg.GetRestartedApps() != 1 {
			t.Fatalf("rotate: %v %v", res, err)
		}
		sent(t, mongotest.UserCommand{Verb: "updateUser", User: "gofastapi.alice", Roles: readWrite(aliceDB)})
		// The new runner signs in through the front with the new
		// password, and the front signs in to MongoDB with it.
		if body := p.eventually(t, "alice-app", "/secret", `"ok":true`); !strings.Contains(body, `"ok":true`) {
			t.Errorf("alice's app after rotation: %s\n%s", body, p.logs)
		}
		if strings.Contains(p.logs.String(), "the store refused a user") {
			t.Errorf("MongoDB refused a user the front accepted:\n%s", p.logs)
		}
	})
	t.Run("deleting the user drops its MongoDB user", func(t *testing.T) {
		if _, err := p.as(rootTok).admin.DeleteUser(ctx, connect.NewRequest(&v1.DeleteUserRequest{User: "alice"})); err != nil {
			t.Fatal(err)
		}
		sent(t, mongotest.UserCommand{Verb: "dropUser", User: "gofastapi.alice"})
		if n := users("alice"); n != 0 {
			t.Errorf("MongoDB has %d users alice after her deletion\n%s", n, p.logs)
		}
	})
}
