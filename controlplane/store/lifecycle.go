package store

import (
	"context"
	"errors"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Draft is an app's saved, undeployed files; one per app, keyed by app id.
type Draft struct {
	AppID      string        `bson:"_id"`
	Entrypoint string        `bson:"entrypoint"`
	Hash       string        `bson:"hash"`
	Files      []VersionFile `bson:"files"`
	SavedAt    time.Time     `bson:"saved_at"`
}

// ErrAmbiguous means a version prefix matches more than one version.
var ErrAmbiguous = errors.New("store: prefix matches more than one version")

// PutDraft replaces app d.AppID's draft.
func (s *Store) PutDraft(ctx context.Context, d *Draft) error {
	d.SavedAt = now()
	_, err := s.drafts.ReplaceOne(ctx, bson.M{"_id": d.AppID}, d, options.Replace().SetUpsert(true))
	return classify(err)
}

// Draft returns app appID's draft, or ErrNotFound if it has none.
func (s *Store) Draft(ctx context.Context, appID string) (*Draft, error) {
	var d Draft
	if err := s.drafts.FindOne(ctx, bson.M{"_id": appID}).Decode(&d); err != nil {
		return nil, classify(err)
	}
	return &d, nil
}

// DraftHashes returns the draft hash of each of appIDs that has a draft.
func (s *Store) DraftHashes(ctx context.Context, appIDs []string) (map[string]Draft, error) {
	cur, err := s.drafts.Find(ctx, bson.M{"_id": bson.M{"$in": appIDs}},
		options.Find().SetProjection(bson.M{"hash": 1, "saved_at": 1, "entrypoint": 1}))
	if err != nil {
		return nil, classify(err)
	}
	var ds []Draft
	if err := cur.All(ctx, &ds); err != nil {
		return nil, classify(err)
	}
	out := make(map[string]Draft, len(ds))
	for _, d := range ds {
		out[d.AppID] = d
	}
	return out, nil
}

// AppUpdate lists the metadata fields UpdateApp changes; nil leaves one.
type AppUpdate struct {
	Name, Description, Notes, Framework, Mode, Entrypoint *string
}

// UpdateApp applies u to app id and returns the app as updated. A name
// another app has gives ErrDuplicate.
func (s *Store) UpdateApp(ctx context.Context, id string, u AppUpdate) (*App, error) {
	set := bson.M{}
	for k, v := range map[string]*string{"name": u.Name, "description": u.Description, "notes": u.Notes,
		"framework": u.Framework, "mode": u.Mode, "entrypoint": u.Entrypoint} {
		if v != nil {
			set[k] = *v
		}
	}
	if u.Name != nil {
		var other App
		err := s.apps.FindOne(ctx, bson.M{"name": *u.Name, "_id": bson.M{"$ne": id}}).Decode(&other)
		if err == nil {
			return nil, ErrDuplicate
		} else if !errors.Is(err, mongo.ErrNoDocuments) {
			return nil, classify(err)
		}
	}
	var a App
	opts := options.FindOneAndUpdate().SetReturnDocument(options.After)
	if len(set) == 0 {
		if err := s.apps.FindOne(ctx, bson.M{"_id": id}).Decode(&a); err != nil {
			return nil, classify(err)
		}
		return &a, nil
	}
	if err := s.apps.FindOneAndUpdate(ctx, bson.M{"_id": id}, bson.M{"$set": set}, opts).Decode(&a); err != nil {
		return nil, classify(err)
	}
	return &a, nil
}

// SetEnv replaces app id's environment and its revision.
func (s *Store) SetEnv(ctx context.Context, id string, env []EnvVar, rev string) error {
	res, err := s.apps.UpdateOne(ctx, bson.M{"_id": id}, bson.M{"$set": bson.M{"env": env, "env_rev": rev}})
	if err != nil {
		return classify(err)
	}
	if res.MatchedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// SetEnvRev sets app id's environment revision.
func (s *Store) SetEnvRev(ctx context.Context, id, rev string) error {
	_, err := s.apps.UpdateOne(ctx, bson.M{"_id": id}, bson.M{"$set": bson.M{"env_rev": rev}})
	return classify(err)
}

// AppByID returns the app with id, whoever owns it.
func (s *Store) AppByID(ctx context.Context, id string) (*App, error) {
	var a App
	if err := s.apps.FindOne(ctx, bson.M{"_id": id}).Decode(&a); err != nil {
		return nil, classify(err)
	}
	return &a, nil
}

// ListVersions returns app appID's versions, newest first, without their
// file contents (names and sizes only), at most limit of them.
func (s *Store) ListVersions(ctx context.Context, appID string, limit int64) ([]*Version, error) {
	cur, err := s.versions.Find(ctx, bson.M{"app_id": appID}, options.Find().
		SetSort(bson.D{{Key: "deployed_at", Value: -1}, {Key: "created_at", Value: -1}}).SetLimit(limit))
	if err != nil {
		return nil, classify(err)
	}
	var vs []*Version
	if err := cur.All(ctx, &vs); err != nil {
		return nil, classify(err)
	}
	return vs, nil
}

// VersionByPrefix returns app appID's version whose hash starts with
// prefix: ErrNotFound if none does, ErrAmbiguous if several do.
func (s *Store) VersionByPrefix(ctx context.Context, appID, prefix string) (*Version, error) {
	prefix = strings.ToLower(prefix)
	vs, err := s.ListVersions(ctx, appID, 0)
	if err != nil {
		return nil, err
	}
	var found *Version
	for _, v := range vs {
		if strings.HasPrefix(v.Hash, prefix) {
			if found != nil {
				return nil, ErrAmbiguous
			}
			found = v
		}
	}
	if found == nil {
		return nil, ErrNotFound
	}
	return found, nil
}

// Template is a user's own template; global templates live in the binary.
type Template struct {
	ID          string        `bson:"_id"`
	OwnerID     string        `bson:"owner_id"`
	Owner       string        `bson:"owner"`
	Name        string        `bson:"name"`
	Description string        `bson:"description"`
	Framework   string        `bson:"framework"`
	Mode        string        `bson:"mode"`
	Entrypoint  string        `bson:"entrypoint"`
	Files       []VersionFile `bson:"files"`
	CreatedAt   time.Time     `bson:"created_at"`
	UpdatedAt   time.Time     `bson:"updated_at"`
}

// CreateTemplate inserts t, giving it an id and times.
func (s *Store) CreateTemplate(ctx context.Context, t *Template) error {
	t.ID, t.CreatedAt = "u-"+NewID(), now()
	t.UpdatedAt = t.CreatedAt
	_, err := s.tmpls.InsertOne(ctx, t)
	return classify(err)
}

// Template returns the user template with id.
func (s *Store) Template(ctx context.Context, id string) (*Template, error) {
	var t Template
	if err := s.tmpls.FindOne(ctx, bson.M{"_id": id}).Decode(&t); err != nil {
		return nil, classify(err)
	}
	return &t, nil
}

// ListTemplates returns ownerID's templates by name, without files.
func (s *Store) ListTemplates(ctx context.Context, ownerID string) ([]*Template, error) {
	cur, err := s.tmpls.Find(ctx, bson.M{"owner_id": ownerID}, options.Find().
		SetSort(bson.D{{Key: "name", Value: 1}}).SetProjection(bson.M{"files": 0}))
	if err != nil {
		return nil, classify(err)
	}
	var ts []*Template
	if err := cur.All(ctx, &ts); err != nil {
		return nil, classify(err)
	}
	return ts, nil
}

// ReplaceTemplate stores t over the template with its id and owner.
func (s *Store) ReplaceTemplate(ctx context.Context, t *Template) error {
	t.UpdatedAt = now()
	res, err := s.tmpls.ReplaceOne(ctx, bson.M{"_id": t.ID, "owner_id": t.OwnerID}, t)
	if err != nil {
		return classify(err)
	}
	if res.MatchedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteTemplate deletes ownerID's template id.
func (s *Store) DeleteTemplate(ctx context.Context, ownerID, id string) error {
	res, err := s.tmpls.DeleteOne(ctx, bson.M{"_id": id, "owner_id": ownerID})
	if err != nil {
		return classify(err)
	}
	if res.DeletedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteTemplates deletes every template of ownerID and returns how many.
func (s *Store) DeleteTemplates(ctx context.Context, ownerID string) (int64, error) {
	res, err := s.tmpls.DeleteMany(ctx, bson.M{"owner_id": ownerID})
	if err != nil {
		return 0, classify(err)
	}
	return res.DeletedCount, nil
}

// CountTemplates counts every user's templates.
func (s *Store) CountTemplates(ctx context.Context) (int64, error) {
	n, err := s.tmpls.CountDocuments(ctx, bson.M{})
	return n, classify(err)
}
