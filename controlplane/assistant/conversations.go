package assistant

import (
	"context"
	"errors"
	"fmt"
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
	DecideProposal(ctx context.Context, ownerID, id string, msg, prop int, decision string) error
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
// had stored keep their tools and proposals, and the decisions made on
// those meanwhile (the client sends only their text back). A continued
// conversation the user deleted while the reply was written stays
// deleted.
func (s *Service) saveConversation(ctx context.Context, c *store.Conversation, msgs []*v1.ChatMessage, reply store.ChatMessage) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	create := c.UpdatedAt.IsZero() // never stored
	before := c.Messages
	if !create {
		switch now, err := s.cfg.Store.Conversation(ctx, c.OwnerID, c.ID); {
		case errors.Is(err, store.ErrNotFound):
			return // deleted meanwhile
		case err != nil:
			s.cfg.Logger.Error("store conversation", "id", c.ID, "err", err)
			return
		default:
			before = now.Messages
		}
	}
	c.Messages = make([]store.ChatMessage, 0, len(msgs)+1)
	kept := 0 // bytes of pending proposals' contents
	for i, m := range msgs {
		sm := store.ChatMessage{Role: m.GetRole(), Content: m.GetContent()}
		if i < len(before) && before[i].Role == sm.Role && sameText(before[i].Content, sm.Content) {
			sm = before[i]
			for _, p := range sm.Proposals {
				kept += p.ContentsSize()
			}
		}
		c.Messages = append(c.Messages, sm)
	}
	if strings.TrimSpace(reply.Content) != "" || len(reply.Tools) > 0 || len(reply.Proposals) > 0 {
		reply.Role = "assistant"
		for i, p := range reply.Proposals {
			if n := p.ContentsSize(); kept+n <= keptContents {
				kept += n
				continue
			}
			reply.Proposals[i] = p.Settled() // too much to keep: shown, no longer decidable
		}
		c.Messages = append(c.Messages, reply)
	}
	c.UpdatedAt = time.Now()
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
				pp := &v1.Proposal{Kind: v1.ProposalKind(n.Kind), App: n.App, Summary: n.Summary, Pending: n.Pending, Decision: decisions[n.Decision]}
				for _, f := range n.Files {
					pp.Files = append(pp.Files, &v1.FileChange{Name: f.Name, Removed: f.Removed, OldContent: f.Old, NewContent: f.New})
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

// keptArguments, keptProblems and keptContents bound what a stored
// conversation keeps of a tool's arguments, of a proposal's problems, and
// of its pending proposals' files (a proposal is at most an app's 500 KB
// before and after).
const (
	keptArguments = 2 << 10
	keptProblems  = 5
	keptContents  = 2 << 20
)

// decisions maps a stored decision to its proto value, and back.
var (
	decisions = map[string]v1.ProposalDecision{
		"accepted": v1.ProposalDecision_PROPOSAL_DECISION_ACCEPTED,
		"rejected": v1.ProposalDecision_PROPOSAL_DECISION_REJECTED,
	}
	decisionNames = map[v1.ProposalDecision]string{
		v1.ProposalDecision_PROPOSAL_DECISION_ACCEPTED: "accepted",
		v1.ProposalDecision_PROPOSAL_DECISION_REJECTED: "rejected",
	}
)

// toolNote is what a stored conversation keeps of tool use t.
func toolNote(t *v1.ToolUse) store.ToolUse {
	args := t.GetArguments()
	if len(args) > keptArguments {
		args = strings.ToValidUTF8(args[:keptArguments], "") + "…"
	}
	return store.ToolUse{Name: t.GetName(), Arguments: args, Result: t.GetResult(), Failed: t.GetFailed()}
}

// proposalNote is what a stored conversation keeps of proposal p: all
// of it but its problems after the first few, pending its decision.
func proposalNote(p *v1.Proposal) store.ProposalNote {
	n := store.ProposalNote{Kind: int32(p.GetKind()), App: p.GetApp(), Summary: p.GetSummary(), Pending: true}
	for _, f := range p.GetFiles() {
		n.Files = append(n.Files, store.ProposalFile{Name: f.GetName(), Removed: f.GetRemoved(), Old: f.GetOldContent(), New: f.GetNewContent()})
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

// DecideProposal implements AssistantService.DecideProposal.
func (s *Service) DecideProposal(ctx context.Context, req *connect.Request[v1.DecideProposalRequest]) (*connect.Response[v1.DecideProposalResponse], error) {
	u, err := auth.User(ctx)
	if err != nil {
		return nil, err
	}
	decision, ok := decisionNames[req.Msg.GetDecision()]
	if !ok {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("decision must be accepted or rejected"))
	}
	m, p := req.Msg.GetMessage(), req.Msg.GetProposal()
	switch err := s.cfg.Store.DecideProposal(ctx, u.ID, req.Msg.GetConversationId(), int(m), int(p), decision); {
	case errors.Is(err, store.ErrNotFound):
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no proposal %d in message %d of conversation %q", p, m, req.Msg.GetConversationId()))
	case errors.Is(err, store.ErrDecided):
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
			"proposal %d in message %d was decided before (or its files were too large to keep): reload the conversation to see it", p, m))
	case err != nil:
		return nil, s.internal("decide proposal", err)
	}
	return connect.NewResponse(&v1.DecideProposalResponse{}), nil
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
