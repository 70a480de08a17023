package assistant

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gofastapi/gofastapi/controlplane/auth"
	"github.com/gofastapi/gofastapi/controlplane/store"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// keptConversations is how many conversations a user keeps; older ones go.
const keptConversations = 100

// ConversationStore keeps users' conversations.
type ConversationStore interface {
	Conversation(ctx context.Context, ownerID, id string) (*store.Conversation, error)
	PutConversation(ctx context.Context, c *store.Conversation, create bool, keep int) error
	Conversations(ctx context.Context, ownerID string) ([]*store.Conversation, error)
	DeleteConversation(ctx context.Context, ownerID, id string) error
	DeleteConversations(ctx context.Context, ownerID string) (int64, error)
}

// conversationFor returns the stored conversation that chat req of
// userID continues, or a new one; another user's id is not found.
func (s *Service) conversationFor(ctx context.Context, userID string, req *v1.ChatRequest) (*store.Conversation, error) {
	if id := req.GetConversationId(); id != "" {
		c, err := s.cfg.Store.Conversation(ctx, userID, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, connect.NewError(connect.CodeNotFound, errors.New("no such conversation: start a new chat"))
		}
		return c, err
	}
	now := time.Now()
	return &store.Conversation{ID: store.NewID(), OwnerID: userID, Title: title(req.GetMessages()), App: req.GetApp(), CreatedAt: now}, nil
}

// saveConversation stores c as the chat's messages and, if it has any
// text, tool use or proposal, the reply. The messages the conversation
// had stored keep their tools and proposals (the client sends only their
// text back). A continued conversation the user deleted while the reply
// was written stays deleted.
func (s *Service) saveConversation(ctx context.Context, c *store.Conversation, msgs []*v1.ChatMessage, reply store.ChatMessage) {
	create := c.UpdatedAt.IsZero() // never stored
	before := c.Messages
	c.Messages = make([]store.ChatMessage, 0, len(msgs)+1)
	for i, m := range msgs {
		sm := store.ChatMessage{Role: m.GetRole(), Content: m.GetContent()}
		if i < len(before) && before[i].Role == sm.Role && sameText(before[i].Content, sm.Content) {
			sm = before[i]
		}
		c.Messages = append(c.Messages, sm)
	}
	if strings.TrimSpace(reply.Content) != "" || len(reply.Tools) > 0 || len(reply.Proposals) > 0 {
		reply.Role = "assistant"
		c.Messages = append(c.Messages, reply)
	}
	c.UpdatedAt = time.Now()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.cfg.Store.PutConversation(ctx, c, create, keptConversations); err != nil {
		s.cfg.Logger.Error("store conversation", "id", c.ID, "err", err)
	}
}

// sameText reports whether a and b are the same text but for white
// space: a client keeps a reply as it streamed, without the blank lines
// the stored one has between its rounds.
func sameText(a, b string) bool {
	return strings.Join(strings.Fields(a), "") == strings.Join(strings.Fields(b), "")
}

// title is the start of the first message.
func title(msgs []*v1.ChatMessage) string {
	if len(msgs) == 0 {
		return ""
	}
	t := strings.Join(strings.Fields(msgs[0].GetContent()), " ")
	if utf8.RuneCountInString(t) > 60 {
		t = string([]rune(t)[:60]) + "…"
	}
	return t
}

func conversationProto(c *store.Conversation, withMessages bool) *v1.Conversation {
	p := &v1.Conversation{Id: c.ID, Title: c.Title, App: c.App, CreatedAt: timestamppb.New(c.CreatedAt),
		UpdatedAt: timestamppb.New(c.UpdatedAt), MessageCount: int32(c.MessageCount)}
	if withMessages {
		for _, m := range c.Messages {
			pm := &v1.ChatMessage{Role: m.Role, Content: m.Content}
			for _, t := range m.Tools {
				pm.Tools = append(pm.Tools, &v1.ToolUse{Name: t.Name, Arguments: t.Arguments, Result: t.Result, Failed: t.Failed})
			}
			for _, n := range m.Proposals {
				pp := &v1.Proposal{Kind: v1.ProposalKind(n.Kind), App: n.App, Summary: n.Summary}
				for _, f := range n.Files {
					pp.Files = append(pp.Files, &v1.FileChange{Name: f.Name, Removed: f.Removed})
				}
				for _, q := range n.Problems {
					pp.Problems = append(pp.Problems, &v1.ValidationError{File: q.File, Line: q.Line, Column: q.Column, Message: q.Message})
				}
				pm.Proposals = append(pm.Proposals, pp)
			}
			p.Messages = append(p.Messages, pm)
		}
	}
	return p
}

// keptArguments and keptProblems bound what a stored conversation keeps
// of a tool's arguments and of a proposal's problems.
const (
	keptArguments = 2 << 10
	keptProblems  = 5
)

// toolNote is what a stored conversation keeps of tool use t.
func toolNote(t *v1.ToolUse) store.ToolUse {
	args := t.GetArguments()
	if len(args) > keptArguments {
		args = strings.ToValidUTF8(args[:keptArguments], "") + "…"
	}
	return store.ToolUse{Name: t.GetName(), Arguments: args, Result: t.GetResult(), Failed: t.GetFailed()}
}

// proposalNote is what a stored conversation keeps of proposal p: not the
// files' contents.
func proposalNote(p *v1.Proposal) store.ProposalNote {
	n := store.ProposalNote{Kind: int32(p.GetKind()), App: p.GetApp(), Summary: p.GetSummary()}
	for _, f := range p.GetFiles() {
		n.Files = append(n.Files, store.ProposalFile{Name: f.GetName(), Removed: f.GetRemoved()})
	}
	for _, q := range p.GetProblems()[:min(len(p.GetProblems()), keptProblems)] {
		n.Problems = append(n.Problems, store.ProposalProblem{File: q.GetFile(), Line: q.GetLine(), Column: q.GetColumn(), Message: q.GetMessage()})
	}
	return n
}

// ListConversations implements AssistantService.ListConversations.
func (s *Service) ListConversations(ctx context.Context, _ *connect.Request[v1.ListConversationsRequest]) (*connect.Response[v1.ListConversationsResponse], error) {
	u, err := auth.User(ctx)
	if err != nil {
		return nil, err
	}
	cs, err := s.cfg.Store.Conversations(ctx, u.ID)
	if err != nil {
		return nil, s.internal("list conversations", err)
	}
	out := &v1.ListConversationsResponse{}
	for _, c := range cs {
		out.Conversations = append(out.Conversations, conversationProto(c, false))
	}
	return connect.NewResponse(out), nil
}

// GetConversation implements AssistantService.GetConversation.
func (s *Service) GetConversation(ctx context.Context, req *connect.Request[v1.GetConversationRequest]) (*connect.Response[v1.GetConversationResponse], error) {
	u, err := auth.User(ctx)
	if err != nil {
		return nil, err
	}
	c, err := s.cfg.Store.Conversation(ctx, u.ID, req.Msg.GetId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no such conversation"))
	} else if err != nil {
		return nil, s.internal("get conversation", err)
	}
	return connect.NewResponse(&v1.GetConversationResponse{Conversation: conversationProto(c, true)}), nil
}

// DeleteConversation implements AssistantService.DeleteConversation.
func (s *Service) DeleteConversation(ctx context.Context, req *connect.Request[v1.DeleteConversationRequest]) (*connect.Response[v1.DeleteConversationResponse], error) {
	u, err := auth.User(ctx)
	if err != nil {
		return nil, err
	}
	err = s.cfg.Store.DeleteConversation(ctx, u.ID, req.Msg.GetId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no such conversation"))
	} else if err != nil {
		return nil, s.internal("delete conversation", err)
	}
	return connect.NewResponse(&v1.DeleteConversationResponse{}), nil
}
