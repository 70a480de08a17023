package store

import (
	"context"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gofastapi/gofastapi/proto/bundle"
)

// Version is an immutable deployed state of an app's files, addressed by the
// content hash of those files (proto/bundle.Hash).
type Version struct {
	ID         string        `bson:"_id"` // app id + ":" + hash
	AppID      string        `bson:"app_id"`
	Hash       string        `bson:"hash"`
	Entrypoint string        `bson:"entrypoint"`
	Files      []VersionFile `bson:"files"`
	// Compiled is the content hash of the version's Python modules as the
	// deploy compiled them (see publish.PutCompiled); empty if it did not.
	// Only the hash is kept: the compiled files are in Redis, and a route
	// whose compiled files are gone still works (Python compiles).
	Compiled string `bson:"compiled,omitempty"`
	// Deps is the content hash of the archive of the dependencies
	// installed for the version's requirements.txt (DependencySet.Archive);
	// empty when it declares none. Packages are what it holds.
	Deps      string    `bson:"deps,omitempty"`
	Packages  []Package `bson:"packages,omitempty"`
	CreatedAt time.Time `bson:"created_at"`
	// DeployedAt is the last time this content was deployed (not rolled
	// back to): versions are listed in this order.
	DeployedAt time.Time `bson:"deployed_at"`
}

// VersionFile is one file of a version.
type VersionFile struct {
	Name    string `bson:"name"`
	Content []byte `bson:"content"`
}

// PutVersion stores v unless a version with the same app and hash exists;
// versions are immutable, so an existing one is left as it is but for its
// deploy time, which becomes now, and its compiled modules, which become
// v's if v has any (compiling the same files again may give other bytes).
func (s *Store) PutVersion(ctx context.Context, v *Version) error {
	v.ID, v.CreatedAt = v.AppID+":"+v.Hash, now()
	v.DeployedAt = v.CreatedAt
	insert := bson.M{"_id": v.ID, "app_id": v.AppID, "hash": v.Hash, "entrypoint": v.Entrypoint, "files": v.Files, "created_at": v.CreatedAt}
	// The same files may install other packages when the allowlist or
	// the index changed: the last deploy's are the version's.
	set := bson.M{"deployed_at": v.DeployedAt, "deps": v.Deps, "packages": v.Packages}
	if v.Compiled != "" {
		set["compiled"] = v.Compiled
	}
	_, err := s.versions.UpdateOne(ctx, bson.M{"_id": v.ID},
		bson.M{"$setOnInsert": insert, "$set": set}, options.UpdateOne().SetUpsert(true))
	return classify(err)
}

// Version returns app appID's version with the given hash.
func (s *Store) Version(ctx context.Context, appID, hash string) (*Version, error) {
	var v Version
	if err := s.versions.FindOne(ctx, bson.M{"_id": appID + ":" + hash}).Decode(&v); err != nil {
		return nil, classify(err)
	}
	return &v, nil
}

// VersionHashes returns the content hashes of app appID's versions.
func (s *Store) VersionHashes(ctx context.Context, appID string) ([]string, error) {
	cur, err := s.versions.Find(ctx, bson.M{"app_id": appID}, options.Find().SetProjection(bson.M{"hash": 1}))
	if err != nil {
		return nil, classify(err)
	}
	var vs []Version
	if err := cur.All(ctx, &vs); err != nil {
		return nil, classify(err)
	}
	hashes := make([]string, len(vs))
	for i, v := range vs {
		hashes[i] = v.Hash
	}
	return hashes, nil
}

// HashInUse reports whether any version of any app has content hash.
func (s *Store) HashInUse(ctx context.Context, hash string) (bool, error) {
	n, err := s.versions.CountDocuments(ctx, bson.M{"hash": hash}, options.Count().SetLimit(1))
	return n > 0, classify(err)
}

// VersionDeps returns the dependency archives (Version.Deps) app appID's
// versions name, each once.
func (s *Store) VersionDeps(ctx context.Context, appID string) ([]string, error) {
	cur, err := s.versions.Find(ctx, bson.M{"app_id": appID}, options.Find().SetProjection(bson.M{"deps": 1}))
	if err != nil {
		return nil, classify(err)
	}
	var vs []Version
	if err := cur.All(ctx, &vs); err != nil {
		return nil, classify(err)
	}
	var deps []string
	for _, v := range vs {
		if v.Deps != "" && !slices.Contains(deps, v.Deps) {
			deps = append(deps, v.Deps)
		}
	}
	return deps, nil
}

// DepsInUse reports whether any version names dependency archive hash.
func (s *Store) DepsInUse(ctx context.Context, hash string) (bool, error) {
	n, err := s.versions.CountDocuments(ctx, bson.M{"deps": hash}, options.Count().SetLimit(1))
	return n > 0, classify(err)
}

// VersionFiles returns bundle files as stored files.
func VersionFiles(fs []bundle.File) []VersionFile {
	out := make([]VersionFile, len(fs))
	for i, f := range fs {
		out[i] = VersionFile{Name: f.Name, Content: f.Content}
	}
	return out
}

// BundleFiles returns stored files as bundle files.
func BundleFiles(fs []VersionFile) []bundle.File {
	out := make([]bundle.File, len(fs))
	for i, f := range fs {
		out[i] = bundle.File{Name: f.Name, Content: f.Content}
	}
	return out
}
