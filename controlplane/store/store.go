package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Store is the platform database.
type Store struct {
	db       *mongo.Database
	users    *mongo.Collection
	sessions *mongo.Collection
	apps     *mongo.Collection
	versions *mongo.Collection
	settings *mongo.Collection
	activity *mongo.Collection
	drafts   *mongo.Collection
	tmpls    *mongo.Collection
	obs      *observations // observe.go

	// adminMu serializes changes to who is admin. MongoDB applies each
	// conditional update of the admin count atomically; FerretDB (the
	// embedded default, always a single process) reads and writes a
	// document in two steps, and without this lock two admins demoting each
	// other at once could both pass the "another admin remains" check.
	adminMu sync.Mutex
	// decideMu serializes decisions on assistant proposals, for the same
	// reason: two decisions on one proposal at once must not both pass
	// the "not decided yet" condition.
	decideMu sync.Mutex
}

// Open returns a Store over database db of client and makes sure its indexes
// exist.
func Open(ctx context.Context, client *mongo.Client, db string) (*Store, error) {
	d := client.Database(db)
	s := &Store{
		db:       d,
		users:    d.Collection("users"),
		sessions: d.Collection("sessions"),
		apps:     d.Collection("apps"),
		versions: d.Collection("versions"),
		settings: d.Collection("settings"),
		activity: d.Collection("activity"),
		drafts:   d.Collection("drafts"),
		tmpls:    d.Collection("templates"),
	}
	indexes := []struct {
		c    *mongo.Collection
		keys bson.D
		uniq bool
	}{
		{s.users, bson.D{{Key: "username", Value: 1}}, true},
		{s.apps, bson.D{{Key: "name", Value: 1}}, true},
		{s.apps, bson.D{{Key: "owner_id", Value: 1}}, false},
		{s.sessions, bson.D{{Key: "user_id", Value: 1}}, false},
		{s.versions, bson.D{{Key: "app_id", Value: 1}}, false},
		{s.activity, bson.D{{Key: "time", Value: -1}}, false},
		{s.activity, bson.D{{Key: "actor_id", Value: 1}}, false},
		{s.versions, bson.D{{Key: "app_id", Value: 1}, {Key: "deployed_at", Value: -1}}, false},
		{s.tmpls, bson.D{{Key: "owner_id", Value: 1}}, false},
		{s.domains(), bson.D{{Key: "app_id", Value: 1}}, false},
		{s.versions, bson.D{{Key: "deps", Value: 1}}, false},
		{s.dependencyChunks(), bson.D{{Key: "hash", Value: 1}, {Key: "n", Value: 1}}, false},
		{s.dependencySets(), bson.D{{Key: "archive", Value: 1}}, false},
		{s.conversations(), bson.D{{Key: "owner_id", Value: 1}, {Key: "updated_at", Value: -1}}, false},
	}
	for _, ix := range indexes {
		m := mongo.IndexModel{Keys: ix.keys, Options: options.Index().SetUnique(ix.uniq)}
		if _, err := ix.c.Indexes().CreateOne(ctx, m); err != nil {
			return nil, fmt.Errorf("create index on %s: %w", ix.c.Name(), err)
		}
	}
	if err := s.openObservations(ctx); err != nil {
		return nil, err
	}
	if err := s.reconcileAdmins(ctx); err != nil {
		return nil, fmt.Errorf("admin count: %w", err)
	}
	return s, nil
}

// NewID returns a random 24-hex-digit identifier.
func NewID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// classify turns driver errors into this package's sentinels.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mongo.ErrNoDocuments):
		return ErrNotFound
	case mongo.IsDuplicateKeyError(err):
		return fmt.Errorf("%w: %v", ErrDuplicate, err)
	}
	return err
}

func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }
