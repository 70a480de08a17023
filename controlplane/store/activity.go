package store

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Activity is one entry of the platform's activity feed: who did what to
// what, and when.
type Activity struct {
	ID      string    `bson:"_id"`
	Time    time.Time `bson:"time"`
	ActorID string    `bson:"actor_id"`
	// Actor is the actor's username at the time, kept so the entry reads
	// the same after the actor is renamed or deleted.
	Actor   string `bson:"actor"`
	Kind    string `bson:"kind"`
	Subject string `bson:"subject,omitempty"`
	Detail  string `bson:"detail,omitempty"`
}

// Activity kinds.
const (
	ActivitySignup         = "signup"
	ActivityAppCreate      = "app.create"
	ActivityAppDeploy      = "app.deploy"
	ActivityAppDelete      = "app.delete"
	ActivityUserCreate     = "user.create"
	ActivityUserPromote    = "user.promote"
	ActivityUserDemote     = "user.demote"
	ActivityUserDelete     = "user.delete"
	ActivityUserLimits     = "user.limits"
	ActivitySettings       = "settings.update"
	ActivityPasswordChange = "password.change"
)

// RecordActivity appends a to the feed and marks its actor active at its
// time.
func (s *Store) RecordActivity(ctx context.Context, a *Activity) error {
	t := time.Now()
	// The id starts with the time in nanoseconds, so entries of one
	// millisecond still list in the order they were recorded.
	a.ID, a.Time = fmt.Sprintf("%016x", t.UnixNano())+NewID()[:8], t.UTC().Truncate(time.Millisecond)
	if _, err := s.activity.InsertOne(ctx, a); err != nil {
		return classify(err)
	}
	if a.ActorID == "" {
		return nil
	}
	_, err := s.users.UpdateOne(ctx, bson.M{"_id": a.ActorID}, bson.M{"$set": bson.M{"last_active_at": a.Time}})
	return classify(err)
}

// ListActivity returns the latest n entries, newest first.
func (s *Store) ListActivity(ctx context.Context, n int64) ([]*Activity, error) {
	opts := options.Find().SetSort(bson.D{{Key: "time", Value: -1}, {Key: "_id", Value: -1}}).SetLimit(n)
	cur, err := s.activity.Find(ctx, bson.M{}, opts)
	if err != nil {
		return nil, classify(err)
	}
	var as []*Activity
	if err := cur.All(ctx, &as); err != nil {
		return nil, classify(err)
	}
	return as, nil
}

// DeleteActivityOf removes the entries whose actor is userID and returns
// how many. Entries of others about the user (an admin deleting them)
// stay: they are the admins' record.
func (s *Store) DeleteActivityOf(ctx context.Context, userID string) (int64, error) {
	res, err := s.activity.DeleteMany(ctx, bson.M{"actor_id": userID})
	if err != nil {
		return 0, classify(err)
	}
	return res.DeletedCount, nil
}
