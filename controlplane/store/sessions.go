package store

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Session is a login. Its ID is the sha256 of the bearer token: the token
// itself is never stored.
type Session struct {
	ID        string    `bson:"_id"`
	UserID    string    `bson:"user_id"`
	CreatedAt time.Time `bson:"created_at"`
	ExpiresAt time.Time `bson:"expires_at"`
}

// CreateSession stores sess.
func (s *Store) CreateSession(ctx context.Context, sess *Session) error {
	sess.CreatedAt = now()
	_, err := s.sessions.InsertOne(ctx, sess)
	return classify(err)
}

// Session returns the unexpired session whose token hashes to id.
func (s *Store) Session(ctx context.Context, id string) (*Session, error) {
	var sess Session
	if err := s.sessions.FindOne(ctx, bson.M{"_id": id}).Decode(&sess); err != nil {
		return nil, classify(err)
	}
	if time.Now().After(sess.ExpiresAt) {
		s.sessions.DeleteOne(ctx, bson.M{"_id": id})
		return nil, ErrNotFound
	}
	return &sess, nil
}

// DeleteSession revokes the session id.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	_, err := s.sessions.DeleteOne(ctx, bson.M{"_id": id})
	return classify(err)
}
