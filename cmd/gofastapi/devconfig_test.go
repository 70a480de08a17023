package main

import (
	"io"
	"strings"
	"testing"
)

func TestDevConfigMongoUsers(t *testing.T) {
	const uri = "mongodb://admin:pw@127.0.0.1:27017/?authSource=admin"
	tests := []struct {
		name      string
		args      []string
		env       string // GOFASTAPI_DB_MONGO_USERS
		wantErr   string // "" for none
		wantUsers bool
	}{
		{name: "off by default", args: nil},
		{name: "flag with a URI", args: []string{"--mongo-uri", uri, "--db-mongo-users"}, wantUsers: true},
		{name: "environment with a URI", args: []string{"--mongo-uri", uri}, env: "true", wantUsers: true},
		{name: "the flag overrides the environment", args: []string{"--mongo-uri", uri, "--db-mongo-users=false"}, env: "1"},
		{name: "without --mongo-uri", args: []string{"--db-mongo-users"}, wantErr: "--db-mongo-users needs --mongo-uri"},
		{name: "environment without --mongo-uri", env: "true", wantErr: "--db-mongo-users needs --mongo-uri"},
		{name: "a URI without credentials", args: []string{"--mongo-uri", "mongodb://127.0.0.1:27017/", "--db-mongo-users"}, wantErr: "credentials of a MongoDB user allowed to manage users"},
		{name: "a bad environment value", env: "maybe", wantErr: `GOFASTAPI_DB_MONGO_USERS="maybe"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("MONGO_URI", "")
			t.Setenv("GOFASTAPI_DB_MONGO_USERS", tc.env)
			c, err := parseDevConfig(append([]string{"--runner-uids", "off", "--data", t.TempDir()}, tc.args...), io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseDevConfig = %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.DBMongoUsers != tc.wantUsers {
				t.Errorf("DBMongoUsers = %v, want %v", c.DBMongoUsers, tc.wantUsers)
			}
		})
	}
}
