package store

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// User is a platform account.
type User struct {
	ID           string    `bson:"_id"`
	Username     string    `bson:"username"`
	PasswordHash string    `bson:"password_hash"`
	Admin        bool      `bson:"admin"`
	CreatedAt    time.Time `bson:"created_at"`
}

// CreateUser inserts u, giving it an id and creation time. The first user to
// be created becomes admin: the claim is an insert of a fixed settings
// document, so two simultaneous first signups cannot both win.
func (s *Store) CreateUser(ctx context.Context, u *User) error {
	u.ID, u.CreatedAt = NewID(), now()
	if err := classify(s.users.FindOne(ctx, bson.M{"username": u.Username}).Err()); err == nil {
		return ErrDuplicate
	}
	_, err := s.settings.InsertOne(ctx, bson.M{"_id": "first_admin", "user_id": u.ID})
	u.Admin = err == nil
	if _, err := s.users.InsertOne(ctx, u); err != nil {
		if u.Admin {
			s.settings.DeleteOne(ctx, bson.M{"_id": "first_admin"})
		}
		return classify(err)
	}
	return nil
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
