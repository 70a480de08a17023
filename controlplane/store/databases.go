package store

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Database is one of a user's platform databases. Name is the user's label
// for it (unique per owner, changeable); StoreName is its name inside
// MongoDB, fixed at creation, which apps see as their default database.
type Database struct {
	ID        string    `bson:"_id"`
	OwnerID   string    `bson:"owner_id"`
	Name      string    `bson:"name"`
	StoreName string    `bson:"store_name"`
	Default   bool      `bson:"default"`
	CreatedAt time.Time `bson:"created_at"`
}

// DBAccount is a user's database credentials. Password is sealed (see
// package secretbox) under the platform key; ViewerHash is the SHA-256 of the
// data viewer's password, empty until the user sets one.
type DBAccount struct {
	OwnerID    string    `bson:"_id"`
	Username   string    `bson:"username"`
	Password   []byte    `bson:"password"`
	ViewerHash []byte    `bson:"viewer_hash,omitempty"`
	RotatedAt  time.Time `bson:"rotated_at"`
}

// AppDatabase records the database an app chose; an app without one uses
// its owner's default.
type AppDatabase struct {
	AppID      string `bson:"_id"`
	OwnerID    string `bson:"owner_id"`
	DatabaseID string `bson:"database_id"`
}

func (s *Store) databases() *mongo.Collection    { return s.db.Collection("databases") }
func (s *Store) dbAccounts() *mongo.Collection   { return s.db.Collection("db_accounts") }
func (s *Store) appDatabases() *mongo.Collection { return s.db.Collection("app_databases") }

// EnsureDatabaseIndexes creates the indexes of the database records.
func (s *Store) EnsureDatabaseIndexes(ctx context.Context) error {
	for _, ix := range []struct {
		c    *mongo.Collection
		keys bson.D
		uniq bool
	}{
		{s.databases(), bson.D{{Key: "owner_id", Value: 1}, {Key: "name", Value: 1}}, true},
		{s.databases(), bson.D{{Key: "store_name", Value: 1}}, true},
		{s.dbAccounts(), bson.D{{Key: "username", Value: 1}}, true},
		{s.appDatabases(), bson.D{{Key: "database_id", Value: 1}}, false},
		{s.appDatabases(), bson.D{{Key: "owner_id", Value: 1}}, false},
	} {
		m := mongo.IndexModel{Keys: ix.keys, Options: options.Index().SetUnique(ix.uniq)}
		if _, err := ix.c.Indexes().CreateOne(ctx, m); err != nil {
			return fmt.Errorf("create index on %s: %w", ix.c.Name(), err)
		}
	}
	return nil
}

// CreateDatabase inserts d, giving it an id and creation time; a name the
// owner already uses is ErrDuplicate.
func (s *Store) CreateDatabase(ctx context.Context, d *Database) error {
	d.ID, d.CreatedAt = NewID(), now()
	_, err := s.databases().InsertOne(ctx, d)
	return classify(err)
}

// ListDatabases returns ownerID's databases by name.
func (s *Store) ListDatabases(ctx context.Context, ownerID string) ([]*Database, error) {
	cur, err := s.databases().Find(ctx, bson.M{"owner_id": ownerID}, options.Find().SetSort(bson.D{{Key: "name", Value: 1}}))
	if err != nil {
		return nil, classify(err)
	}
	var out []*Database
	if err := cur.All(ctx, &out); err != nil {
		return nil, classify(err)
	}
	return out, nil
}

// DatabaseStoreNames returns the store names of every user's databases.
func (s *Store) DatabaseStoreNames(ctx context.Context) ([]string, error) {
	cur, err := s.databases().Find(ctx, bson.M{}, options.Find().SetProjection(bson.M{"store_name": 1}))
	if err != nil {
		return nil, classify(err)
	}
	var ds []*Database
	if err := cur.All(ctx, &ds); err != nil {
		return nil, classify(err)
	}
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = d.StoreName
	}
	return names, nil
}

// OwnedDatabase returns ownerID's database with the given id or name, and
// ErrNotFound otherwise.
func (s *Store) OwnedDatabase(ctx context.Context, ownerID, idOrName string) (*Database, error) {
	var d Database
	filter := bson.M{"owner_id": ownerID, "$or": bson.A{bson.M{"_id": idOrName}, bson.M{"name": idOrName}}}
	if err := s.databases().FindOne(ctx, filter).Decode(&d); err != nil {
		return nil, classify(err)
	}
	return &d, nil
}

// RenameDatabase sets the name of ownerID's database id.
func (s *Store) RenameDatabase(ctx context.Context, ownerID, id, name string) error {
	res, err := s.databases().UpdateOne(ctx, bson.M{"_id": id, "owner_id": ownerID}, bson.M{"$set": bson.M{"name": name}})
	if err != nil {
		return classify(err)
	}
	if res.MatchedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// SetDefaultDatabase makes id ownerID's only default database.
func (s *Store) SetDefaultDatabase(ctx context.Context, ownerID, id string) error {
	if _, err := s.OwnedDatabase(ctx, ownerID, id); err != nil {
		return err
	}
	if _, err := s.databases().UpdateMany(ctx, bson.M{"owner_id": ownerID, "_id": bson.M{"$ne": id}}, bson.M{"$set": bson.M{"default": false}}); err != nil {
		return classify(err)
	}
	_, err := s.databases().UpdateOne(ctx, bson.M{"_id": id}, bson.M{"$set": bson.M{"default": true}})
	return classify(err)
}

// DeleteDatabase removes the record of database id (not its data).
func (s *Store) DeleteDatabase(ctx context.Context, id string) error {
	_, err := s.databases().DeleteOne(ctx, bson.M{"_id": id})
	return classify(err)
}

// DBAccount returns ownerID's database credentials.
func (s *Store) DBAccount(ctx context.Context, ownerID string) (*DBAccount, error) {
	var a DBAccount
	if err := s.dbAccounts().FindOne(ctx, bson.M{"_id": ownerID}).Decode(&a); err != nil {
		return nil, classify(err)
	}
	return &a, nil
}

// DBAccountByUsername returns the database credentials of database user
// username.
func (s *Store) DBAccountByUsername(ctx context.Context, username string) (*DBAccount, error) {
	var a DBAccount
	if err := s.dbAccounts().FindOne(ctx, bson.M{"username": username}).Decode(&a); err != nil {
		return nil, classify(err)
	}
	return &a, nil
}

// DBAccountUsernames returns the database user names of every account,
// sorted.
func (s *Store) DBAccountUsernames(ctx context.Context) ([]string, error) {
	cur, err := s.dbAccounts().Find(ctx, bson.M{}, options.Find().SetProjection(bson.M{"username": 1}).SetSort(bson.M{"username": 1}))
	if err != nil {
		return nil, classify(err)
	}
	var list []DBAccount
	if err := cur.All(ctx, &list); err != nil {
		return nil, classify(err)
	}
	names := make([]string, len(list))
	for i, a := range list {
		names[i] = a.Username
	}
	return names, nil
}

// PutDBAccount creates or replaces a's record.
func (s *Store) PutDBAccount(ctx context.Context, a *DBAccount) error {
	_, err := s.dbAccounts().ReplaceOne(ctx, bson.M{"_id": a.OwnerID}, a, options.Replace().SetUpsert(true))
	return classify(err)
}

// SetViewerHash sets the hash of ownerID's data viewer password.
func (s *Store) SetViewerHash(ctx context.Context, ownerID string, hash []byte) error {
	res, err := s.dbAccounts().UpdateOne(ctx, bson.M{"_id": ownerID}, bson.M{"$set": bson.M{"viewer_hash": hash}})
	if err != nil {
		return classify(err)
	}
	if res.MatchedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// SetAppDatabase records that app appID of ownerID uses database dbID; an
// empty dbID forgets the choice.
func (s *Store) SetAppDatabase(ctx context.Context, ownerID, appID, dbID string) error {
	if dbID == "" {
		_, err := s.appDatabases().DeleteOne(ctx, bson.M{"_id": appID})
		return classify(err)
	}
	_, err := s.appDatabases().ReplaceOne(ctx, bson.M{"_id": appID},
		&AppDatabase{AppID: appID, OwnerID: ownerID, DatabaseID: dbID}, options.Replace().SetUpsert(true))
	return classify(err)
}

// AppDatabaseID returns the database app appID chose, or "" if none.
func (s *Store) AppDatabaseID(ctx context.Context, appID string) (string, error) {
	var a AppDatabase
	err := classify(s.appDatabases().FindOne(ctx, bson.M{"_id": appID}).Decode(&a))
	if err == ErrNotFound {
		return "", nil
	}
	return a.DatabaseID, err
}

// AppDatabaseChoices returns ownerID's apps' choices, by app id.
func (s *Store) AppDatabaseChoices(ctx context.Context, ownerID string) (map[string]string, error) {
	cur, err := s.appDatabases().Find(ctx, bson.M{"owner_id": ownerID})
	if err != nil {
		return nil, classify(err)
	}
	var list []AppDatabase
	if err := cur.All(ctx, &list); err != nil {
		return nil, classify(err)
	}
	m := make(map[string]string, len(list))
	for _, a := range list {
		m[a.AppID] = a.DatabaseID
	}
	return m, nil
}

// DeleteDatabaseRecordsOf removes ownerID's database records, credentials
// and app choices (not the data), and returns how many databases there were.
func (s *Store) DeleteDatabaseRecordsOf(ctx context.Context, ownerID string) (int64, error) {
	if _, err := s.appDatabases().DeleteMany(ctx, bson.M{"owner_id": ownerID}); err != nil {
		return 0, classify(err)
	}
	if _, err := s.dbAccounts().DeleteOne(ctx, bson.M{"_id": ownerID}); err != nil {
		return 0, classify(err)
	}
	res, err := s.databases().DeleteMany(ctx, bson.M{"owner_id": ownerID})
	if err != nil {
		return 0, classify(err)
	}
	return res.DeletedCount, nil
}
