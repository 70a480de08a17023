package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Package is one installed Python package of an app's dependencies.
type Package struct {
	Name    string `bson:"name"`
	Version string `bson:"version"`
}

// DependencySet is what installing one set of requirements gave: an
// archive of the installed packages, kept whole in the platform database
// (in chunks, see PutDependencySet) so that Redis, which runners fetch it
// from, stays a cache.
type DependencySet struct {
	// Key names the requirements it was installed for (see deps.Key).
	Key string `bson:"_id"`
	// Archive is the content hash of the archive (sha256, hex).
	Archive  string    `bson:"archive"`
	Packages []Package `bson:"packages"`
	// Modules are the top-level modules the packages provide.
	Modules []string `bson:"modules"`
	// Size is the archive's size in bytes.
	Size      int64     `bson:"size"`
	CreatedAt time.Time `bson:"created_at"`
}

// chunkBytes is the size of an archive's chunks: a MongoDB document holds
// at most 16 MB.
const chunkBytes = 4 << 20

type archiveChunk struct {
	ID   string `bson:"_id"` // archive hash + ":" + index
	Hash string `bson:"hash"`
	N    int    `bson:"n"`
	Data []byte `bson:"data"`
}

func (s *Store) dependencySets() *mongo.Collection { return s.db.Collection("dependency_sets") }
func (s *Store) dependencyChunks() *mongo.Collection {
	return s.db.Collection("dependency_chunks")
}

// DependencySet returns the set installed for key; ErrNotFound if none
// was.
func (s *Store) DependencySet(ctx context.Context, key string) (*DependencySet, error) {
	var d DependencySet
	if err := s.dependencySets().FindOne(ctx, bson.M{"_id": key}).Decode(&d); err != nil {
		return nil, classify(err)
	}
	return &d, nil
}

// PutDependencySet stores set d and its archive: the chunks first, so a
// set that can be read always has its archive.
func (s *Store) PutDependencySet(ctx context.Context, d *DependencySet, archive []byte) error {
	for i := 0; i*chunkBytes < len(archive); i++ {
		part := archive[i*chunkBytes : min(len(archive), (i+1)*chunkBytes)]
		c := archiveChunk{ID: fmt.Sprintf("%s:%d", d.Archive, i), Hash: d.Archive, N: i, Data: part}
		if _, err := s.dependencyChunks().ReplaceOne(ctx, bson.M{"_id": c.ID}, c, options.Replace().SetUpsert(true)); err != nil {
			return classify(err)
		}
	}
	d.Size, d.CreatedAt = int64(len(archive)), now()
	_, err := s.dependencySets().ReplaceOne(ctx, bson.M{"_id": d.Key}, d, options.Replace().SetUpsert(true))
	return classify(err)
}

// DependencySetsByArchive returns the sets installed as archive hash.
func (s *Store) DependencySetsByArchive(ctx context.Context, hash string) ([]*DependencySet, error) {
	cur, err := s.dependencySets().Find(ctx, bson.M{"archive": hash})
	if err != nil {
		return nil, classify(err)
	}
	var out []*DependencySet
	if err := cur.All(ctx, &out); err != nil {
		return nil, classify(err)
	}
	return out, nil
}

// HasDependencyArchive reports whether archive hash is stored.
func (s *Store) HasDependencyArchive(ctx context.Context, hash string) (bool, error) {
	n, err := s.dependencyChunks().CountDocuments(ctx, bson.M{"hash": hash, "n": 0}, options.Count().SetLimit(1))
	return n > 0, classify(err)
}

// DeleteDependencyArchive deletes dependency archive hash and the sets
// installed as it (see DepsInUse: the caller checks no version needs it).
func (s *Store) DeleteDependencyArchive(ctx context.Context, hash string) error {
	if _, err := s.dependencySets().DeleteMany(ctx, bson.M{"archive": hash}); err != nil {
		return classify(err)
	}
	_, err := s.dependencyChunks().DeleteMany(ctx, bson.M{"hash": hash})
	return classify(err)
}

// DependencyArchive returns the archive with content hash hash, put by
// PutDependencySet; ErrNotFound if there is none.
func (s *Store) DependencyArchive(ctx context.Context, hash string) ([]byte, error) {
	cur, err := s.dependencyChunks().Find(ctx, bson.M{"hash": hash}, options.Find().SetSort(bson.M{"n": 1}))
	if err != nil {
		return nil, classify(err)
	}
	var chunks []archiveChunk
	if err := cur.All(ctx, &chunks); err != nil {
		return nil, classify(err)
	}
	if len(chunks) == 0 {
		return nil, ErrNotFound
	}
	var out []byte
	for i, c := range chunks {
		if c.N != i {
			return nil, errors.New("dependency archive " + hash + ": a chunk is missing")
		}
		out = append(out, c.Data...)
	}
	return out, nil
}
