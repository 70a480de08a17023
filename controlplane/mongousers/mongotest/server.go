// Package mongotest runs, for tests, a MongoDB-compatible server with real
// users: FerretDB's own binary (the version go.mod requires, built once by
// deploy/testenv/ferretdb-bin.sh) with SCRAM authentication on
// (--test-enable-new-auth) over SQLite in a temporary directory. No MongoDB
// server can run here; this one checks passwords as MongoDB does, but has
// no roles: its createUser and updateUser refuse a non-empty role list.
// A RolesProxy in front of it records the roles and forwards the commands
// without them, so the code under test runs as against MongoDB.
//
// Start skips the test when the binary was not built, unless
// GOFASTAPI_REQUIRE_TESTENV is set (CI: make test runs make testenv first),
// where a missing binary fails it.
package mongotest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gofastapi/gofastapi/deploy/testenv"
)

// AdminUser is the user every Server starts with, allowed everything.
const AdminUser = "admin"

// Server is a running FerretDB with authentication.
type Server struct {
	// Addr is its host:port.
	Addr string
	// AdminPassword is AdminUser's password.
	AdminPassword string
	Dir           string
}

// URI returns the connection string of user with password, authenticated
// in the admin database with SCRAM-SHA-256.
func (s *Server) URI(user, password string) string {
	u := url.URL{Scheme: "mongodb", User: url.UserPassword(user, password), Host: s.Addr, Path: "/",
		RawQuery: "authSource=admin&authMechanism=SCRAM-SHA-256&serverSelectionTimeoutMS=5000"}
	return u.String()
}

// AdminURI is URI of AdminUser.
func (s *Server) AdminURI() string { return s.URI(AdminUser, s.AdminPassword) }

// Binary returns the FerretDB binary's path, or skips or fails t if it
// was not built.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := testenv.Run("ferretdb-bin.sh", "-n")
	if err != nil {
		t.Fatalf("mongotest: %v", err)
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("GOFASTAPI_REQUIRE_TESTENV") != "" {
			t.Fatalf("mongotest: FerretDB binary %s missing and GOFASTAPI_REQUIRE_TESTENV is set: run make testenv", bin)
		}
		t.Skipf("mongotest: FerretDB binary %s not built; run make testenv (deploy/testenv/ferretdb-bin.sh) to run this test", bin)
	}
	return bin
}

// Start starts a Server for t and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", port), AdminPassword: "admin-pw-" + port, Dir: dir}
	logPath := filepath.Join(dir, "ferretdb.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin,
		"--handler=sqlite", "--sqlite-url=file:"+dir+"/",
		"--listen-addr="+s.Addr, "--debug-addr=-", "--state-dir="+dir,
		"--telemetry=disable", "--log-level=warn",
		"--test-enable-new-auth",
		"--setup-username="+AdminUser, "--setup-password="+s.AdminPassword, "--setup-database=admin",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logFile.Close(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	if err := s.waitReady(exited); err != nil {
		log, _ := os.ReadFile(logPath)
		t.Fatalf("mongotest: FerretDB did not start: %v\n%s", err, log)
	}
	return s
}

// waitReady pings the server as AdminUser until it answers, the process
// ends or a minute passes.
func (s *Server) waitReady(exited <-chan struct{}) error {
	c, err := mongo.Connect(options.Client().ApplyURI(s.AdminURI()))
	if err != nil {
		return err
	}
	defer c.Disconnect(context.Background())
	deadline := time.Now().Add(time.Minute)
	// Paces the pings that fail at once (refused connections, a user not
	// set up yet); readiness is the ping's answer, not the pace.
	pace := time.NewTicker(20 * time.Millisecond)
	defer pace.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = c.Ping(ctx, nil)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer within a minute: %w", err)
		}
		select {
		case <-exited:
			return errors.New("the process exited")
		case <-pace.C:
		}
	}
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}
