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

// User is a platform account.
type User struct {
	ID           string    `bson:"_id"`
	Username     string    `bson:"username"`
	PasswordHash string    `bson:"password_hash"`
	Email        string    `bson:"email,omitempty"`
	Admin        bool      `bson:"admin"`
	CreatedAt    time.Time `bson:"created_at"`
	// LastActiveAt is the user's last API call (to within a minute, see
	// TouchSession) or recorded action; zero if never.
	LastActiveAt time.Time `bson:"last_active_at,omitempty"`
	// Limits are the user's own limits; nil means the default tier.
	Limits *Limits `bson:"limits,omitempty"`
	// Deleting is set while the user's data is being deleted: the user can
	// no longer sign in or use a session.
	Deleting bool `bson:"deleting,omitempty"`
}

// adminsID is the settings document that counts admins. It is created by
// the first user to sign up, which is what makes that user the admin: the
// insert of a fixed _id succeeds exactly once.
const adminsID = "admins"

// CreateUser inserts u, giving it an id and creation time; a taken
// username is ErrDuplicate, decided by the unique index (no check before
// the insert, so two simultaneous signups cannot both get a name). The
// first user to be created becomes admin and u.Admin reports it; u.Admin
// on input is ignored (use SetAdmin).
func (s *Store) CreateUser(ctx context.Context, u *User) error {
	u.ID, u.CreatedAt, u.Admin = NewID(), now(), false
	if _, err := s.users.InsertOne(ctx, u); err != nil {
		return classify(err)
	}
	won, err := s.claimFirstAdmin(ctx, u.ID)
	if err != nil {
		return err
	}
	u.Admin = won
	return nil
}

// claimFirstAdmin makes userID the admin if no user has been before.
func (s *Store) claimFirstAdmin(ctx context.Context, userID string) (bool, error) {
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	_, err := s.settings.InsertOne(ctx, bson.M{"_id": adminsID, "count": 1, "first": userID})
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	} else if err != nil {
		return false, classify(err)
	}
	// A crash between the claim and this update leaves no admin;
	// reconcileAdmins repairs that at the next start.
	if _, err := s.users.UpdateOne(ctx, bson.M{"_id": userID}, bson.M{"$set": bson.M{"admin": true}}); err != nil {
		return false, classify(err)
	}
	return true, nil
}

// SetAdmin makes user id an admin or not and reports whether that changed
// anything. Demoting the last admin is ErrLastAdmin.
func (s *Store) SetAdmin(ctx context.Context, id string, admin bool) (bool, error) {
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	u, err := s.UserByID(ctx, id)
	if err != nil {
		return false, err
	}
	if u.Admin == admin {
		return false, nil
	}
	if admin {
		res, err := s.users.UpdateOne(ctx, bson.M{"_id": id, "admin": false}, bson.M{"$set": bson.M{"admin": true}})
		if err != nil {
			return false, classify(err)
		}
		if res.ModifiedCount == 0 {
			return false, nil
		}
		return true, s.addAdmins(ctx, 1)
	}
	if err := s.takeAdminSlot(ctx); err != nil {
		return false, err
	}
	res, err := s.users.UpdateOne(ctx, bson.M{"_id": id, "admin": true}, bson.M{"$set": bson.M{"admin": false}})
	if err != nil || res.ModifiedCount == 0 {
		if gerr := s.addAdmins(ctx, 1); gerr != nil {
			return false, gerr
		}
		return false, classify(err)
	}
	return true, nil
}

// DeleteUser removes the user document id (its data goes first, see
// controlplane/admin). Deleting the last admin is ErrLastAdmin.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	u, err := s.UserByID(ctx, id)
	if err != nil {
		return err
	}
	if u.Admin {
		if err := s.takeAdminSlot(ctx); err != nil {
			return err
		}
	}
	res, err := s.users.DeleteOne(ctx, bson.M{"_id": id})
	if err == nil && res.DeletedCount == 0 {
		err = ErrNotFound
	}
	if err != nil && u.Admin {
		if gerr := s.addAdmins(ctx, 1); gerr != nil {
			return gerr
		}
	}
	return classify(err)
}

// takeAdminSlot lowers the admin count by one if another admin remains,
// and is ErrLastAdmin otherwise. The condition and the decrement are one
// update, so on MongoDB two replicas cannot both take the last slot.
func (s *Store) takeAdminSlot(ctx context.Context) error {
	err := s.settings.FindOneAndUpdate(ctx,
		bson.M{"_id": adminsID, "count": bson.M{"$gt": 1}},
		bson.M{"$inc": bson.M{"count": -1}}).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return ErrLastAdmin
	}
	return classify(err)
}

func (s *Store) addAdmins(ctx context.Context, n int) error {
	_, err := s.settings.UpdateOne(ctx, bson.M{"_id": adminsID}, bson.M{"$inc": bson.M{"count": n}}, options.UpdateOne().SetUpsert(true))
	return classify(err)
}

// reconcileAdmins sets the admin count from the users at startup, when no
// request runs: it repairs a count left wrong by a crash between two
// steps, and a claim whose user never became admin (the first user, else
// the oldest, is promoted, so a platform with users always has an admin).
func (s *Store) reconcileAdmins(ctx context.Context) error {
	s.settings.DeleteOne(ctx, bson.M{"_id": "first_admin"}) // earlier claim format
	n, err := s.users.CountDocuments(ctx, bson.M{"admin": true})
	if err != nil {
		return classify(err)
	}
	if n == 0 {
		var claim struct {
			First string `bson:"first"`
		}
		s.settings.FindOne(ctx, bson.M{"_id": adminsID}).Decode(&claim)
		var u User
		err := s.users.FindOne(ctx, bson.M{"_id": claim.First}).Decode(&u)
		if errors.Is(err, mongo.ErrNoDocuments) {
			err = s.users.FindOne(ctx, bson.M{}, options.FindOne().SetSort(bson.D{{Key: "created_at", Value: 1}})).Decode(&u)
		}
		if errors.Is(err, mongo.ErrNoDocuments) {
			// No users: the next signup claims admin.
			_, err := s.settings.DeleteOne(ctx, bson.M{"_id": adminsID})
			return classify(err)
		} else if err != nil {
			return classify(err)
		}
		if _, err := s.users.UpdateOne(ctx, bson.M{"_id": u.ID}, bson.M{"$set": bson.M{"admin": true}}); err != nil {
			return classify(err)
		}
		n = 1
	}
	_, err = s.settings.UpdateOne(ctx, bson.M{"_id": adminsID}, bson.M{"$set": bson.M{"count": n}}, options.UpdateOne().SetUpsert(true))
	return classify(err)
}

// UserByName returns the user called username.
func (s *Store) UserByName(ctx context.Context, username string) (*User, error) {
	var u User
	if err := s.users.FindOne(ctx, bson.M{"username": username}).Decode(&u); err != nil {
		return nil, classify(err)
	}
	return &u, nil
}

// UserByID returns the user with id.
func (s *Store) UserByID(ctx context.Context, id string) (*User, error) {
	var u User
	if err := s.users.FindOne(ctx, bson.M{"_id": id}).Decode(&u); err != nil {
		return nil, classify(err)
	}
	return &u, nil
}

// UserByRef returns the user whose username or id is ref.
func (s *Store) UserByRef(ctx context.Context, ref string) (*User, error) {
	u, err := s.UserByName(ctx, ref)
	if errors.Is(err, ErrNotFound) {
		return s.UserByID(ctx, ref)
	}
	return u, err
}

// ListUsers returns every user by username.
func (s *Store) ListUsers(ctx context.Context) ([]*User, error) {
	cur, err := s.users.Find(ctx, bson.M{}, options.Find().SetSort(bson.D{{Key: "username", Value: 1}}))
	if err != nil {
		return nil, classify(err)
	}
	var us []*User
	if err := cur.All(ctx, &us); err != nil {
		return nil, classify(err)
	}
	return us, nil
}

// SetPassword replaces user id's password hash.
func (s *Store) SetPassword(ctx context.Context, id, hash string) error {
	return s.setUser(ctx, id, bson.M{"password_hash": hash})
}

// SetLimits replaces user id's limits.
func (s *Store) SetLimits(ctx context.Context, id string, l Limits) error {
	return s.setUser(ctx, id, bson.M{"limits": l})
}

// MarkDeleting flags user id as being deleted: from then on no session of
// theirs is accepted and they cannot log in.
func (s *Store) MarkDeleting(ctx context.Context, id string) error {
	return s.setUser(ctx, id, bson.M{"deleting": true})
}

func (s *Store) setUser(ctx context.Context, id string, set bson.M) error {
	res, err := s.users.UpdateOne(ctx, bson.M{"_id": id}, bson.M{"$set": set})
	if err != nil {
		return classify(err)
	}
	if res.MatchedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// CountUsers returns the number of users and of admins.
func (s *Store) CountUsers(ctx context.Context) (users, admins int64, err error) {
	if users, err = s.users.CountDocuments(ctx, bson.M{}); err != nil {
		return 0, 0, classify(err)
	}
	if admins, err = s.users.CountDocuments(ctx, bson.M{"admin": true}); err != nil {
		return 0, 0, classify(err)
	}
	return users, admins, nil
}

// StorageBytes returns the platform database's storage size, as dbStats
// reports it.
func (s *Store) StorageBytes(ctx context.Context) (int64, error) {
	var res bson.M
	if err := s.db.RunCommand(ctx, bson.D{{Key: "dbStats", Value: 1}}).Decode(&res); err != nil {
		return 0, fmt.Errorf("dbStats: %w", classify(err))
	}
	for _, k := range []string{"totalSize", "storageSize", "dataSize"} {
		if n, ok := number(res[k]); ok && n > 0 {
			return n, nil
		}
	}
	return 0, nil
}

func number(v any) (int64, bool) {
	switch n := v.(type) {
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case float64:
		return int64(n), true
	}
	return 0, false
}
