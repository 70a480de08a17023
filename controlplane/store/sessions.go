package store

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Session is a login. Its ID is the sha256 of the bearer token: the token
// itself is never stored.
type Session struct {
	ID        string    `bson:"_id"`
	UserID    string    `bson:"user_id"`
	CreatedAt time.Time `bson:"created_at"`
	ExpiresAt time.Time `bson:"expires_at"`
	// LastSeenAt is the session's last use, to within TouchSession's
	// granularity.
	LastSeenAt time.Time `bson:"last_seen_at"`
	// Address and UserAgent describe the client that logged in, so a user
	// can tell their sessions apart.
	Address   string `bson:"address,omitempty"`
	UserAgent string `bson:"user_agent,omitempty"`
}

// CreateSession stores sess and marks its user active.
func (s *Store) CreateSession(ctx context.Context, sess *Session) error {
	sess.CreatedAt = now()
	sess.LastSeenAt = sess.CreatedAt
	if _, err := s.sessions.InsertOne(ctx, sess); err != nil {
		return classify(err)
	}
	_, err := s.users.UpdateOne(ctx, bson.M{"_id": sess.UserID}, bson.M{"$set": bson.M{"last_active_at": sess.CreatedAt}})
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

// DeleteUserSession revokes session id if it belongs to userID, and is
// ErrNotFound otherwise.
func (s *Store) DeleteUserSession(ctx context.Context, userID, id string) error {
	res, err := s.sessions.DeleteOne(ctx, bson.M{"_id": id, "user_id": userID})
	if err != nil {
		return classify(err)
	}
	if res.DeletedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteUserSessions revokes every session of userID except the one with
// id except (none when empty) and returns how many it revoked.
func (s *Store) DeleteUserSessions(ctx context.Context, userID, except string) (int64, error) {
	filter := bson.M{"user_id": userID}
	if except != "" {
		filter["_id"] = bson.M{"$ne": except}
	}
	res, err := s.sessions.DeleteMany(ctx, filter)
	if err != nil {
		return 0, classify(err)
	}
	return res.DeletedCount, nil
}

// ListSessions returns userID's unexpired sessions, newest first, and
// deletes the expired ones.
func (s *Store) ListSessions(ctx context.Context, userID string) ([]*Session, error) {
	if _, err := s.sessions.DeleteMany(ctx, bson.M{"user_id": userID, "expires_at": bson.M{"$lte": now()}}); err != nil {
		return nil, classify(err)
	}
	cur, err := s.sessions.Find(ctx, bson.M{"user_id": userID}, options.Find().SetSort(bson.D{{Key: "created_at", Value: -1}}))
	if err != nil {
		return nil, classify(err)
	}
	var ss []*Session
	if err := cur.All(ctx, &ss); err != nil {
		return nil, classify(err)
	}
	return ss, nil
}

// TouchSession records that session id of userID was used at t: it sets
// the session's LastSeenAt and the user's LastActiveAt.
func (s *Store) TouchSession(ctx context.Context, id, userID string, t time.Time) error {
	t = t.UTC().Truncate(time.Millisecond)
	if _, err := s.sessions.UpdateOne(ctx, bson.M{"_id": id}, bson.M{"$set": bson.M{"last_seen_at": t}}); err != nil {
		return classify(err)
	}
	_, err := s.users.UpdateOne(ctx, bson.M{"_id": userID}, bson.M{"$set": bson.M{"last_active_at": t}})
	return classify(err)
}

// CountActiveSessions returns the number of unexpired sessions.
func (s *Store) CountActiveSessions(ctx context.Context) (int64, error) {
	n, err := s.sessions.CountDocuments(ctx, bson.M{"expires_at": bson.M{"$gt": now()}})
	return n, classify(err)
}
