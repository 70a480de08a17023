package store

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// AssistantSettings are a user's settings of the AI assistant: their
// provider, model and endpoint, and their key, sealed (see secretbox).
type AssistantSettings struct {
	UserID    string `bson:"_id"`
	Provider  string `bson:"provider"`
	Model     string `bson:"model"`
	BaseURL   string `bson:"base_url,omitempty"`
	SealedKey []byte `bson:"sealed_key,omitempty"`
}

func (s *Store) assistant() *mongo.Collection { return s.db.Collection("assistant_settings") }

// AssistantSettings returns userID's assistant settings; ErrNotFound if
// they have none.
func (s *Store) AssistantSettings(ctx context.Context, userID string) (*AssistantSettings, error) {
	var a AssistantSettings
	if err := s.assistant().FindOne(ctx, bson.M{"_id": userID}).Decode(&a); err != nil {
		return nil, classify(err)
	}
	return &a, nil
}

// SetAssistantSettings stores a as its user's assistant settings.
func (s *Store) SetAssistantSettings(ctx context.Context, a *AssistantSettings) error {
	_, err := s.assistant().ReplaceOne(ctx, bson.M{"_id": a.UserID}, a, options.Replace().SetUpsert(true))
	return classify(err)
}

// DeleteAssistantSettings removes userID's assistant settings, key
// included, and reports how many it removed (0 or 1).
func (s *Store) DeleteAssistantSettings(ctx context.Context, userID string) (int64, error) {
	res, err := s.assistant().DeleteOne(ctx, bson.M{"_id": userID})
	if err != nil {
		return 0, classify(err)
	}
	return res.DeletedCount, nil
}
