package store

import (
	"context"
	"fmt"
	"slices"
	"time"

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

// Conversation is a stored chat of a user with the assistant.
type Conversation struct {
	ID        string        `bson:"_id"`
	OwnerID   string        `bson:"owner_id"`
	Title     string        `bson:"title"`
	App       string        `bson:"app,omitempty"`
	CreatedAt time.Time     `bson:"created_at"`
	UpdatedAt time.Time     `bson:"updated_at"`
	Messages  []ChatMessage `bson:"messages"`
	// MessageCount is len(Messages), kept so that listing conversations
	// reads no messages.
	MessageCount int `bson:"message_count"`
}

// ChatMessage is one message of a Conversation.
type ChatMessage struct {
	Role    string `bson:"role"` // user, assistant
	Content string `bson:"content"`
	// Tools and Proposals are what an assistant's reply used and
	// proposed, in order.
	Tools     []ToolUse      `bson:"tools,omitempty"`
	Proposals []ProposalNote `bson:"proposals,omitempty"`
}

// ToolUse is a tool an assistant's reply used.
type ToolUse struct {
	Name      string `bson:"name"`
	Arguments string `bson:"arguments"` // JSON, cut short
	Result    string `bson:"result"`
	Failed    bool   `bson:"failed,omitempty"`
}

// ProposalNote is what is kept of a change an assistant's reply proposed.
type ProposalNote struct {
	Kind     int32             `bson:"kind"` // v1.ProposalKind
	App      string            `bson:"app"`
	Summary  string            `bson:"summary"`
	Files    []ProposalFile    `bson:"files,omitempty"`
	Problems []ProposalProblem `bson:"problems,omitempty"`
	// Pending is set while the proposal is not decided and its files'
	// contents are kept (see DecideProposal).
	Pending bool `bson:"pending,omitempty"`
	// Decision is "accepted" or "rejected" once the user decided.
	Decision string `bson:"decision,omitempty"`
}

// Settled returns p no longer pending, without its files' contents (their
// names are kept): a decided proposal, or one too large to keep.
func (p ProposalNote) Settled() ProposalNote {
	p.Pending = false
	p.Files = slices.Clone(p.Files)
	for i := range p.Files {
		p.Files[i].Old, p.Files[i].New = "", ""
	}
	return p
}

// ContentsSize is the bytes of file contents p keeps: none once settled.
func (p ProposalNote) ContentsSize() int {
	n := 0
	if p.Pending {
		for _, f := range p.Files {
			n += len(f.Old) + len(f.New)
		}
	}
	return n
}

// ProposalProblem is one problem validation found in a proposal.
type ProposalProblem struct {
	File    string `bson:"file"`
	Line    int32  `bson:"line"`
	Column  int32  `bson:"column"`
	Message string `bson:"message"`
}

// ProposalFile is a file a proposal touched, with its contents before
// and after while the proposal is pending.
type ProposalFile struct {
	Name    string `bson:"name"`
	Removed bool   `bson:"removed,omitempty"`
	Old     string `bson:"old,omitempty"`
	New     string `bson:"new,omitempty"`
}

func (s *Store) conversations() *mongo.Collection { return s.db.Collection("conversations") }

// Conversation returns ownerID's conversation id; ErrNotFound if they
// have none of that id.
func (s *Store) Conversation(ctx context.Context, ownerID, id string) (*Conversation, error) {
	var c Conversation
	if err := s.conversations().FindOne(ctx, bson.M{"_id": id, "owner_id": ownerID}).Decode(&c); err != nil {
		return nil, classify(err)
	}
	return &c, nil
}

// PutConversation stores c, which the caller has checked is its owner's:
// a new one if create, else over the stored one, unless that was deleted
// meanwhile (then nothing is stored). It keeps at most keep conversations
// of the owner, dropping the least recently updated.
func (s *Store) PutConversation(ctx context.Context, c *Conversation, create bool, keep int) error {
	c.MessageCount = len(c.Messages)
	if _, err := s.conversations().ReplaceOne(ctx, bson.M{"_id": c.ID, "owner_id": c.OwnerID}, c, options.Replace().SetUpsert(create)); err != nil {
		return classify(err)
	}
	cs, err := s.Conversations(ctx, c.OwnerID)
	if err != nil {
		return err
	}
	for _, old := range cs[min(keep, len(cs)):] {
		if _, err := s.conversations().DeleteOne(ctx, bson.M{"_id": old.ID}); err != nil {
			return classify(err)
		}
	}
	return nil
}

// DecideProposal records decision ("accepted", "rejected") on proposal
// prop of message msg of ownerID's conversation id, which then no longer
// keeps the proposal's files' contents. ErrNotFound if there is no such
// conversation or proposal, ErrDecided if the proposal was decided (or
// kept no contents) before. The conversation's update time is unchanged:
// deciding is not continuing it.
func (s *Store) DecideProposal(ctx context.Context, ownerID, id string, msg, prop int, decision string) error {
	s.decideMu.Lock()
	defer s.decideMu.Unlock()
	c, err := s.Conversation(ctx, ownerID, id)
	if err != nil {
		return err
	}
	if msg < 0 || msg >= len(c.Messages) || prop < 0 || prop >= len(c.Messages[msg].Proposals) {
		return ErrNotFound
	}
	p := c.Messages[msg].Proposals[prop]
	if !p.Pending {
		return ErrDecided
	}
	p = p.Settled()
	p.Decision = decision
	path := fmt.Sprintf("messages.%d.proposals.%d", msg, prop)
	res, err := s.conversations().UpdateOne(ctx,
		bson.M{"_id": id, "owner_id": ownerID, path + ".pending": true},
		bson.M{"$set": bson.M{path: p}})
	if err != nil {
		return classify(err)
	}
	if res.MatchedCount == 0 {
		return ErrDecided // decided (or the conversation rewritten) meanwhile
	}
	return nil
}

// Conversations returns ownerID's conversations, the most recently
// updated first, without their messages (see MessageCount).
func (s *Store) Conversations(ctx context.Context, ownerID string) ([]*Conversation, error) {
	cur, err := s.conversations().Find(ctx, bson.M{"owner_id": ownerID},
		options.Find().SetSort(bson.M{"updated_at": -1}).SetProjection(bson.M{"messages": 0}))
	if err != nil {
		return nil, classify(err)
	}
	var cs []*Conversation
	if err := cur.All(ctx, &cs); err != nil {
		return nil, classify(err)
	}
	return cs, nil
}

// DeleteConversation deletes ownerID's conversation id; ErrNotFound if
// they have none of that id.
func (s *Store) DeleteConversation(ctx context.Context, ownerID, id string) error {
	res, err := s.conversations().DeleteOne(ctx, bson.M{"_id": id, "owner_id": ownerID})
	if err != nil {
		return classify(err)
	}
	if res.DeletedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteConversations deletes every conversation of ownerID and reports
// how many.
func (s *Store) DeleteConversations(ctx context.Context, ownerID string) (int64, error) {
	res, err := s.conversations().DeleteMany(ctx, bson.M{"owner_id": ownerID})
	if err != nil {
		return 0, classify(err)
	}
	return res.DeletedCount, nil
}
