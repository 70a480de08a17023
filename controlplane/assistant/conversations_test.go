package assistant

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/gofastapi/gofastapi/controlplane/embedded/embeddedtest"
	"github.com/gofastapi/gofastapi/controlplane/store"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// TestSaveConversationKeepsDecisions: a chat that continues a
// conversation keeps the decisions made on its earlier proposals while
// the reply was written, and a reply's proposals keep their files'
// contents within keptContents a conversation.
func TestSaveConversationKeepsDecisions(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, embeddedtest.Mongo(t), "test")
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{cfg: Config{Store: st, Logger: slog.New(slog.DiscardHandler)}}
	msg := func(role, content string) *v1.ChatMessage { return &v1.ChatMessage{Role: role, Content: content} }
	change := func(app string, size int) store.ProposalNote {
		return proposalNote(&v1.Proposal{Kind: v1.ProposalKind_PROPOSAL_KIND_UPDATE_APP, App: app, Files: []*v1.FileChange{
			{Name: "app.py", OldContent: "app = 1\n", NewContent: strings.Repeat("x", size)}}})
	}

	c := &store.Conversation{ID: store.NewID(), OwnerID: "alice"}
	s.saveConversation(ctx, c, []*v1.ChatMessage{msg("user", "change it")},
		store.ChatMessage{Content: "Here.", Proposals: []store.ProposalNote{change("notes", 100)}})
	// A second chat continues it: it loaded the conversation before the
	// user accepted the proposal, and is saved after.
	continuing, err := st.Conversation(ctx, "alice", c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DecideProposal(ctx, "alice", c.ID, 1, 0, "accepted"); err != nil {
		t.Fatal(err)
	}
	big := keptContents/2 - 1000 // two fit, a third does not
	s.saveConversation(ctx, continuing, []*v1.ChatMessage{msg("user", "change it"), msg("assistant", "Here."), msg("user", "more")},
		store.ChatMessage{Content: "Three more.", Proposals: []store.ProposalNote{change("a", big), change("b", big), change("c", big)}})

	got, err := st.Conversation(ctx, "alice", c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Messages) != 4 {
		t.Fatalf("stored %d messages, want 4", len(got.Messages))
	}
	if p := got.Messages[1].Proposals[0]; p.Decision != "accepted" || p.Pending || p.Files[0].New != "" {
		t.Errorf("the accepted proposal after the continued chat was saved: %+v", p)
	}
	ps := got.Messages[3].Proposals
	for i, want := range []bool{true, true, false} {
		if p := ps[i]; p.Pending != want || (len(p.Files[0].New) == big) != want {
			t.Errorf("proposal %s: pending %v with %d bytes of new content; want pending %v", p.App, p.Pending, len(p.Files[0].New), want)
		}
	}
	if err := st.DecideProposal(ctx, "alice", c.ID, 3, 2, "accepted"); err != store.ErrDecided {
		t.Errorf("deciding a proposal whose contents were not kept: %v, want ErrDecided", err)
	}
}
