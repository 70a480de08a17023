package store

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gofastapi/gofastapi/controlplane/embedded/embeddedtest"
)

// TestDecideProposalOnce: of several decisions on one proposal at once,
// one is recorded; the others are ErrDecided.
func TestDecideProposalOnce(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, embeddedtest.Mongo(t), "test")
	if err != nil {
		t.Fatal(err)
	}
	c := &Conversation{ID: NewID(), OwnerID: "alice", Messages: []ChatMessage{
		{Role: "user", Content: "change it"},
		{Role: "assistant", Content: "Here.", Proposals: []ProposalNote{{App: "notes", Pending: true, Files: []ProposalFile{{Name: "app.py", Old: "a", New: "b"}}}}},
	}}
	if err := st.PutConversation(ctx, c, true, 10); err != nil {
		t.Fatal(err)
	}
	var won, decided atomic.Int32
	var wg sync.WaitGroup
	for _, d := range []string{"accepted", "rejected", "accepted", "rejected", "accepted", "rejected"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch err := st.DecideProposal(ctx, "alice", c.ID, 1, 0, d); err {
			case nil:
				won.Add(1)
			case ErrDecided:
				decided.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 || decided.Load() != 5 {
		t.Errorf("6 decisions at once: %d recorded, %d found it decided; want 1 and 5", won.Load(), decided.Load())
	}
	if err := st.DecideProposal(ctx, "bob", c.ID, 1, 0, "accepted"); err != ErrNotFound {
		t.Errorf("another user's decision: %v, want ErrNotFound", err)
	}
	got, err := st.Conversation(ctx, "alice", c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p := got.Messages[1].Proposals[0]; p.Pending || p.Decision == "" || p.Files[0].Name != "app.py" || p.Files[0].Old != "" || p.Files[0].New != "" {
		t.Errorf("the decided proposal: %+v", p)
	}
}
