package store

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// App is a user's app. DeployedVersion is the content hash of the version its
// route points at, empty before the first deploy.
type App struct {
	ID              string `bson:"_id"`
	OwnerID         string `bson:"owner_id"`
	Name            string `bson:"name"`
	Description     string `bson:"description"`
	Framework       string `bson:"framework"`
	Entrypoint      string `bson:"entrypoint"`
	DeployedVersion string `bson:"deployed_version"`
	// DeployedCompiled is the content hash of the deployed version's
	// compiled modules (Version.Compiled), which its route carries.
	DeployedCompiled string `bson:"deployed_compiled,omitempty"`
	// DeployedDeps is the deployed version's dependencies (Version.Deps),
	// which its route carries.
	DeployedDeps string    `bson:"deployed_deps,omitempty"`
	CreatedAt    time.Time `bson:"created_at"`
	DeployedAt   time.Time `bson:"deployed_at"`
	// Mode is "single" or "multi" (how the editor shows the files).
	Mode       string `bson:"mode"`
	Notes      string `bson:"notes"`
	TemplateID string `bson:"template_id,omitempty"`
	// Env is the app's environment: variables in clear, secrets sealed.
	Env []EnvVar `bson:"env,omitempty"`
	// EnvRev changes with every change of the app's environment; the
	// route carries it so the edge restarts the app with the new values.
	EnvRev string `bson:"env_rev,omitempty"`
}

// EnvVar is one environment variable of an app. A secret's value is kept
// only in Sealed (see controlplane/secretbox); a secret with no Sealed
// value (a clone's) is not set.
type EnvVar struct {
	Name   string `bson:"name"`
	Value  string `bson:"value,omitempty"`
	Secret bool   `bson:"secret,omitempty"`
	Sealed []byte `bson:"sealed,omitempty"`
}

// CreateApp inserts a, giving it an id and creation time.
func (s *Store) CreateApp(ctx context.Context, a *App) error {
	a.ID, a.CreatedAt = NewID(), now()
	if err := classify(s.apps.FindOne(ctx, bson.M{"name": a.Name}).Err()); err == nil {
		return ErrDuplicate
	}
	_, err := s.apps.InsertOne(ctx, a)
	return classify(err)
}

// OwnedApp returns the app with the given id or name if ownerID owns it, and
// ErrNotFound otherwise, so callers cannot learn of other users' apps.
func (s *Store) OwnedApp(ctx context.Context, ownerID, idOrName string) (*App, error) {
	var a App
	filter := bson.M{"owner_id": ownerID, "$or": bson.A{bson.M{"_id": idOrName}, bson.M{"name": idOrName}}}
	if err := s.apps.FindOne(ctx, filter).Decode(&a); err != nil {
		return nil, classify(err)
	}
	return &a, nil
}

// AppByName returns the app called name, whoever owns it.
func (s *Store) AppByName(ctx context.Context, name string) (*App, error) {
	var a App
	if err := s.apps.FindOne(ctx, bson.M{"name": name}).Decode(&a); err != nil {
		return nil, classify(err)
	}
	return &a, nil
}

// ListApps returns ownerID's apps by name; an empty ownerID lists every app.
func (s *Store) ListApps(ctx context.Context, ownerID string) ([]*App, error) {
	filter := bson.M{}
	if ownerID != "" {
		filter["owner_id"] = ownerID
	}
	cur, err := s.apps.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "name", Value: 1}}))
	if err != nil {
		return nil, classify(err)
	}
	var apps []*App
	if err := cur.All(ctx, &apps); err != nil {
		return nil, classify(err)
	}
	return apps, nil
}

// SetDeployed points app id at version v (its hash, entrypoint and
// compiled modules).
func (s *Store) SetDeployed(ctx context.Context, id string, v *Version) error {
	res, err := s.apps.UpdateOne(ctx, bson.M{"_id": id}, bson.M{"$set": bson.M{
		"deployed_version": v.Hash, "entrypoint": v.Entrypoint, "deployed_compiled": v.Compiled, "deployed_deps": v.Deps, "deployed_at": now(),
	}})
	if err != nil {
		return classify(err)
	}
	if res.MatchedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteApp removes app id, all its versions, its draft, its database
// choice and its metrics, errors and health records.
func (s *Store) DeleteApp(ctx context.Context, id string) error {
	if err := s.DeleteObservations(ctx, id); err != nil {
		return err
	}
	if _, err := s.appDatabases().DeleteOne(ctx, bson.M{"_id": id}); err != nil {
		return classify(err) // a stale choice would keep its database "in use"
	}
	if _, err := s.versions.DeleteMany(ctx, bson.M{"app_id": id}); err != nil {
		return classify(err)
	}
	if _, err := s.drafts.DeleteOne(ctx, bson.M{"_id": id}); err != nil {
		return classify(err)
	}
	if err := s.deleteAppDomains(ctx, id); err != nil {
		return err
	}
	res, err := s.apps.DeleteOne(ctx, bson.M{"_id": id})
	if err != nil {
		return classify(err)
	}
	if res.DeletedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// CountApps returns the number of ownerID's apps; an empty ownerID counts
// every app.
func (s *Store) CountApps(ctx context.Context, ownerID string) (int64, error) {
	filter := bson.M{}
	if ownerID != "" {
		filter["owner_id"] = ownerID
	}
	n, err := s.apps.CountDocuments(ctx, filter)
	return n, classify(err)
}
