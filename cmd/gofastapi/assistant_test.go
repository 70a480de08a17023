package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// fakeModel is a language model provider's streaming API, scripted: the
// n-th call of a conversation gets script[n]. It stands in for Anthropic
// and OpenAI, which the tests cannot reach, and records what it was sent.
type fakeModel struct {
	mu       sync.Mutex
	requests []map[string]any
	headers  []http.Header
	script   []func(w io.Writer, req map[string]any)
	status   int // answered instead of the script when set
}

func (f *fakeModel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req map[string]any
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	n := len(f.requests)
	f.requests = append(f.requests, req)
	f.headers = append(f.headers, r.Header.Clone())
	status := f.status
	f.mu.Unlock()
	if status != 0 {
		w.WriteHeader(status)
		fmt.Fprint(w, `{"error":{"message":"invalid x-api-key"}}`)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	if n < len(f.script) {
		f.script[n](w, req)
	}
}

func (f *fakeModel) reset(script ...func(w io.Writer, req map[string]any)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests, f.headers, f.script, f.status = nil, nil, script, 0
}

func (f *fakeModel) request(i int) (map[string]any, http.Header) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i >= len(f.requests) {
		return nil, nil
	}
	return f.requests[i], f.headers[i]
}

func sse(w io.Writer, v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintf(w, "data: %s\n\n", b)
}

// OpenAI-style chunks.
func oaText(w io.Writer, s string) {
	sse(w, map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": s}}}})
}

func oaCall(w io.Writer, index int, id, name, args string) {
	// The arguments come in two pieces, as real streams split them.
	half := len(args) / 2
	sse(w, map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"tool_calls": []any{
		map[string]any{"index": index, "id": id, "type": "function", "function": map[string]any{"name": name, "arguments": args[:half]}}}}}}})
	sse(w, map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"tool_calls": []any{
		map[string]any{"index": index, "function": map[string]any{"arguments": args[half:]}}}}}}})
}

func oaEnd(w io.Writer, reason string) {
	sse(w, map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": reason}}})
	fmt.Fprint(w, "data: [DONE]\n\n")
}

// chat runs one chat and collects its events.
type chatResult struct {
	conversation string // the stored conversation's id (the first event)
	text         string
	tools        []*v1.ToolUse
	proposals    []*v1.Proposal
	err          error
}

func runChat(c apiClients, app string, msgs ...string) chatResult {
	return runChatIn(c, "", app, msgs...)
}

// runChatIn runs one chat that continues stored conversation conv ("":
// a new one).
func runChatIn(c apiClients, conv, app string, msgs ...string) chatResult {
	req := &v1.ChatRequest{App: app, ConversationId: conv}
	for i, m := range msgs {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		req.Messages = append(req.Messages, &v1.ChatMessage{Role: role, Content: m})
	}
	var r chatResult
	s, err := c.asst.Chat(context.Background(), connect.NewRequest(req))
	if err != nil {
		return chatResult{err: err}
	}
	var b strings.Builder
	for s.Receive() {
		switch e := s.Msg().GetEvent().(type) {
		case *v1.ChatResponse_ConversationId:
			r.conversation = e.ConversationId
		case *v1.ChatResponse_Text:
			b.WriteString(e.Text)
		case *v1.ChatResponse_ToolUse:
			r.tools = append(r.tools, e.ToolUse)
		case *v1.ChatResponse_Proposal:
			r.proposals = append(r.proposals, e.Proposal)
		}
	}
	r.text, r.err = b.String(), s.Err()
	return r
}

// TestAssistant chats through both providers' APIs (fakes of them): the
// reply streams; the model's tools read the user's apps as the user (not
// another user's); its changes come back as validated proposals and
// change nothing; the key is sealed and never returned; a refused key, no
// key and too many messages each get an answer that says what to do.
func TestAssistant(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	ctx := context.Background()
	oa, an := &fakeModel{}, &fakeModel{}
	oaSrv, anSrv := httptest.NewServer(oa), httptest.NewServer(an)
	t.Cleanup(oaSrv.Close)
	t.Cleanup(anSrv.Close)
	// The index is never asked (no deploy declares packages): with one,
	// the system prompt says what requirements.txt may declare.
	p := startPlatform(t, t.TempDir(), t.TempDir(), "--assistant-private-endpoints", "--assistant-anthropic-url", anSrv.URL,
		"--package-index", "http://127.0.0.1:9/simple/",
		"--assistant-rate", "6/1m")
	alice, _ := p.signup(t, "alice", "alice password")
	bob, _ := p.signup(t, "bob", "bob's password")
	p.deploy(t, alice, "notes", fmt.Sprintf(helloApp, "notes"))
	p.deploy(t, bob, "secret-app", fmt.Sprintf(helloApp, "bob's secret"))
	a := p.as(alice)
	before, err := a.apps.GetApp(ctx, connect.NewRequest(&v1.GetAppRequest{IdOrName: "notes"}))
	if err != nil {
		t.Fatal(err)
	}

	// 1. No key yet.
	if r := runChat(a, "notes", "hello"); connect.CodeOf(r.err) != connect.CodeFailedPrecondition || !strings.Contains(r.err.Error(), "paste your key") {
		t.Fatalf("chat without a key: %v", r.err)
	}

	// 2. An OpenAI-compatible endpoint, with tools and proposals.
	set, err := a.asst.SetAssistantSettings(ctx, connect.NewRequest(&v1.SetAssistantSettingsRequest{
		Provider: v1.AssistantProvider_ASSISTANT_PROVIDER_OPENAI, Model: "fake-model", BaseUrl: oaSrv.URL + "/v1", ApiKey: proto.String("sk-alice-secret")}))
	if err != nil || !set.Msg.GetSettings().GetKeySet() {
		t.Fatalf("SetAssistantSettings: %v %v", set, err)
	}
	got, err := a.asst.GetAssistantSettings(ctx, connect.NewRequest(&v1.GetAssistantSettingsRequest{}))
	if err != nil || !got.Msg.GetSettings().GetKeySet() || got.Msg.GetSettings().GetModel() != "fake-model" ||
		strings.Contains(got.Msg.String(), "sk-alice-secret") {
		t.Fatalf("GetAssistantSettings = %v, %v: want the key set and not shown", got.Msg, err)
	}
	broken := "from fastapi import FastAPI\napp = FastAPI()\n@app.get('/health')\ndef health(:\n    return {}\n"
	fixed := fmt.Sprintf(helloApp, "notes") + "\n@app.get('/health')\ndef health():\n    return {'ok': True}\n"
	args := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	oa.reset(
		func(w io.Writer, _ map[string]any) {
			oaText(w, "Let me ")
			oaText(w, "look.")
			oaCall(w, 0, "call_1", "get_app", `{"name":"notes"}`)
			oaCall(w, 1, "call_2", "get_app", `{"name":"secret-app"}`)
			oaEnd(w, "tool_calls")
		},
		func(w io.Writer, _ map[string]any) {
			oaCall(w, 0, "call_3", "update_app", args(map[string]any{"name": "notes", "summary": "Add /health",
				"files": []any{map[string]string{"name": "app.py", "content": broken}}}))
			oaEnd(w, "tool_calls")
		},
		func(w io.Writer, _ map[string]any) {
			oaCall(w, 0, "call_4", "update_app", args(map[string]any{"name": "notes", "summary": "Add /health",
				"files": []any{map[string]string{"name": "app.py", "content": fixed}}}))
			oaEnd(w, "tool_calls")
		},
		func(w io.Writer, _ map[string]any) {
			oaText(w, "I proposed a /health route.")
			oaEnd(w, "stop")
		},
	)
	r := runChat(a, "notes", "Add a health route")
	if r.err != nil {
		t.Fatalf("chat: %v\n%s", r.err, p.logs)
	}
	conversationID := r.conversation
	if r.text != "Let me look.I proposed a /health route." {
		t.Errorf("streamed text %q", r.text)
	}
	if len(r.tools) != 4 || r.tools[0].GetName() != "get_app" || r.tools[0].GetFailed() || r.tools[0].GetResult() != "notes: 1 files" ||
		!r.tools[1].GetFailed() || !strings.Contains(r.tools[1].GetResult(), `you have no app named "secret-app"`) {
		t.Fatalf("tool uses %v: want notes read, bob's app not found", r.tools)
	}
	if len(r.proposals) != 2 {
		t.Fatalf("%d proposals, want 2", len(r.proposals))
	}
	if p0 := r.proposals[0]; len(p0.GetProblems()) == 0 || p0.GetProblems()[0].GetFile() != "app.py" || p0.GetProblems()[0].GetLine() != 4 {
		t.Errorf("the broken proposal's problems %v, want app.py line 4", p0.GetProblems())
	}
	p1 := r.proposals[1]
	if p1.GetKind() != v1.ProposalKind_PROPOSAL_KIND_UPDATE_APP || p1.GetApp() != "notes" || p1.GetSummary() != "Add /health" ||
		len(p1.GetProblems()) != 0 || len(p1.GetFiles()) != 1 || p1.GetFiles()[0].GetNewContent() != fixed ||
		p1.GetFiles()[0].GetOldContent() != fmt.Sprintf(helloApp, "notes") {
		t.Errorf("the fixed proposal: %v", p1)
	}
	req, hdr := oa.request(0)
	if hdr.Get("Authorization") != "Bearer sk-alice-secret" || req["model"] != "fake-model" || req["stream"] != true {
		t.Errorf("first request: auth %q, model %v, stream %v", hdr.Get("Authorization"), req["model"], req["stream"])
	}
	if sys := fmt.Sprint(req["messages"]); !strings.Contains(sys, "PLATFORM_MONGO_URI") || !strings.Contains(sys, `"notes" open in the editor`) ||
		!strings.Contains(sys, "requirements.txt") || !strings.Contains(sys, "python-dateutil") {
		t.Errorf("the system prompt lacks the platform's rules or the open app: %.300s", sys)
	}
	req, _ = oa.request(1)
	toolMsgs := fmt.Sprint(req["messages"])
	if !strings.Contains(toolMsgs, "hello was called") || !strings.Contains(toolMsgs, "error: ") || strings.Contains(toolMsgs, "bob's secret") {
		t.Errorf("the tool results sent back: want notes' source and an error for bob's app, nothing of it: %.2000s", toolMsgs)
	}
	req, _ = oa.request(2)
	if !strings.Contains(fmt.Sprint(req["messages"]), "validation found problems") {
		t.Error("the model was not told of the broken proposal's problems")
	}
	after, err := a.apps.GetApp(ctx, connect.NewRequest(&v1.GetAppRequest{IdOrName: "notes"}))
	if err != nil || after.Msg.GetApp().GetDraftHash() != before.Msg.GetApp().GetDraftHash() ||
		after.Msg.GetApp().GetDeployedVersion() != before.Msg.GetApp().GetDeployedVersion() {
		t.Errorf("the chat changed the app: draft %s -> %s", before.Msg.GetApp().GetDraftHash(), after.Msg.GetApp().GetDraftHash())
	}

	// 3. Anthropic's Messages API.
	if _, err := a.asst.SetAssistantSettings(ctx, connect.NewRequest(&v1.SetAssistantSettingsRequest{
		Provider: v1.AssistantProvider_ASSISTANT_PROVIDER_ANTHROPIC, Model: "claude-test", ApiKey: proto.String("sk-ant-alice")})); err != nil {
		t.Fatal(err)
	}
	an.reset(
		func(w io.Writer, _ map[string]any) {
			sse(w, map[string]any{"type": "message_start"})
			sse(w, map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}})
			sse(w, map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": "Checking"}})
			sse(w, map[string]any{"type": "content_block_stop", "index": 0})
			sse(w, map[string]any{"type": "content_block_start", "index": 1, "content_block": map[string]any{"type": "tool_use", "id": "toolu_1", "name": "list_apps"}})
			sse(w, map[string]any{"type": "content_block_delta", "index": 1, "delta": map[string]any{"type": "input_json_delta", "partial_json": "{"}})
			sse(w, map[string]any{"type": "content_block_delta", "index": 1, "delta": map[string]any{"type": "input_json_delta", "partial_json": "}"}})
			sse(w, map[string]any{"type": "content_block_stop", "index": 1})
			sse(w, map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": "tool_use"}})
			sse(w, map[string]any{"type": "message_stop"})
		},
		func(w io.Writer, _ map[string]any) {
			sse(w, map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}})
			sse(w, map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": " You have one app."}})
			sse(w, map[string]any{"type": "message_stop"})
		},
	)
	r = runChat(a, "", "What apps do I have?")
	if r.err != nil || r.text != "Checking You have one app." || len(r.tools) != 1 || r.tools[0].GetResult() != "1 apps" {
		t.Fatalf("Anthropic chat: %v %q %v", r.err, r.text, r.tools)
	}
	req, hdr = an.request(1)
	if hdr.Get("X-Api-Key") != "sk-ant-alice" || hdr.Get("Anthropic-Version") == "" || req["model"] != "claude-test" {
		t.Errorf("Anthropic request: key %q, version %q, model %v", hdr.Get("X-Api-Key"), hdr.Get("Anthropic-Version"), req["model"])
	}
	if msgs := fmt.Sprint(req["messages"]); !strings.Contains(msgs, "tool_use_id:toolu_1") || !strings.Contains(msgs, `"Name":"notes"`) {
		t.Errorf("the tool result sent back to Anthropic: %.1000s", msgs)
	}

	// The conversations are stored, the user's own: the first with its
	// app, each with the reply's text.
	first, second := conversationID, r.conversation
	list, err := a.asst.ListConversations(ctx, connect.NewRequest(&v1.ListConversationsRequest{}))
	if err != nil || len(list.Msg.GetConversations()) != 2 || list.Msg.GetConversations()[0].GetId() != second ||
		list.Msg.GetConversations()[1].GetTitle() != "Add a health route" || list.Msg.GetConversations()[1].GetApp() != "notes" {
		t.Fatalf("alice's conversations: %v, %v; want the newest first, titled by their first message", list, err)
	}
	conv, err := a.asst.GetConversation(ctx, connect.NewRequest(&v1.GetConversationRequest{Id: first}))
	if err != nil {
		t.Fatal(err)
	}
	if ms := conv.Msg.GetConversation().GetMessages(); len(ms) != 2 || ms[0].GetContent() != "Add a health route" ||
		ms[1].GetRole() != "assistant" || ms[1].GetContent() != "Let me look.\n\nI proposed a /health route." {
		t.Errorf("the stored conversation: %v", ms)
	} else {
		// The reply keeps the tools it used and what it proposed, its
		// files' contents too until it is decided.
		tools, props := ms[1].GetTools(), ms[1].GetProposals()
		if len(tools) != 4 || tools[0].GetName() != "get_app" || tools[0].GetResult() != "notes: 1 files" || !tools[1].GetFailed() ||
			!strings.Contains(tools[0].GetArguments(), `"notes"`) {
			t.Errorf("the stored reply's tools: %v", tools)
		}
		if len(props) != 2 || props[1].GetKind() != v1.ProposalKind_PROPOSAL_KIND_UPDATE_APP || props[1].GetSummary() != "Add /health" ||
			!props[1].GetPending() || props[1].GetDecision() != v1.ProposalDecision_PROPOSAL_DECISION_UNSPECIFIED ||
			len(props[1].GetFiles()) != 1 || props[1].GetFiles()[0].GetName() != "app.py" || props[1].GetFiles()[0].GetNewContent() != fixed ||
			props[1].GetFiles()[0].GetOldContent() != fmt.Sprintf(helloApp, "notes") ||
			len(props[0].GetProblems()) == 0 || props[0].GetProblems()[0].GetLine() != 4 {
			t.Errorf("the stored reply's proposals: %v", props)
		}
	}
	// The proposal is decided once, by its conversation's owner; its
	// files' contents then go.
	decide := func(c apiClients, prop int32, d v1.ProposalDecision) error {
		_, err := c.asst.DecideProposal(ctx, connect.NewRequest(&v1.DecideProposalRequest{ConversationId: first, Message: 1, Proposal: prop, Decision: d}))
		return err
	}
	if err := decide(p.as(bob), 1, v1.ProposalDecision_PROPOSAL_DECISION_ACCEPTED); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("bob decides alice's proposal: %v, want not found", err)
	}
	if err := decide(a, 2, v1.ProposalDecision_PROPOSAL_DECISION_ACCEPTED); connect.CodeOf(err) != connect.CodeNotFound ||
		!strings.Contains(err.Error(), "no proposal 2 in message 1 of conversation") {
		t.Errorf("a proposal that is not there: %v", err)
	}
	if err := decide(a, 1, v1.ProposalDecision_PROPOSAL_DECISION_UNSPECIFIED); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("no decision: %v", err)
	}
	if err := decide(a, 1, v1.ProposalDecision_PROPOSAL_DECISION_ACCEPTED); err != nil {
		t.Fatalf("alice accepts: %v", err)
	}
	if err := decide(a, 1, v1.ProposalDecision_PROPOSAL_DECISION_REJECTED); connect.CodeOf(err) != connect.CodeFailedPrecondition ||
		!strings.Contains(err.Error(), "was decided before") {
		t.Errorf("deciding again: %v", err)
	}
	conv, err = a.asst.GetConversation(ctx, connect.NewRequest(&v1.GetConversationRequest{Id: first}))
	if err != nil {
		t.Fatal(err)
	}
	if props := conv.Msg.GetConversation().GetMessages()[1].GetProposals(); props[1].GetDecision() != v1.ProposalDecision_PROPOSAL_DECISION_ACCEPTED ||
		props[1].GetPending() || props[1].GetFiles()[0].GetName() != "app.py" || props[1].GetFiles()[0].GetNewContent() != "" ||
		!props[0].GetPending() {
		t.Errorf("the proposals after alice accepted the second: %v", props)
	}
	b := p.as(bob)
	if _, err := b.asst.GetConversation(ctx, connect.NewRequest(&v1.GetConversationRequest{Id: first})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("bob reads alice's conversation: %v", err)
	}
	if _, err := b.asst.DeleteConversation(ctx, connect.NewRequest(&v1.DeleteConversationRequest{Id: first})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("bob deletes alice's conversation: %v", err)
	}
	if r := runChatIn(b, first, "", "hi"); connect.CodeOf(r.err) != connect.CodeNotFound {
		t.Errorf("bob continues alice's conversation: %v", r.err)
	}
	if list, err := b.asst.ListConversations(ctx, connect.NewRequest(&v1.ListConversationsRequest{})); err != nil || len(list.Msg.GetConversations()) != 0 {
		t.Errorf("bob's conversations: %v, %v; want none", list, err)
	}

	// 4. A refused key, in the second conversation continued: it is
	// stored with the new message (and no reply).
	an.mu.Lock()
	an.status = http.StatusUnauthorized
	an.mu.Unlock()
	if r := runChatIn(a, second, "", "What apps do I have?", "Checking You have one app.", "hi"); r.conversation != second {
		t.Errorf("the continued chat's conversation = %q, want %q", r.conversation, second)
	}
	conv, err = a.asst.GetConversation(ctx, connect.NewRequest(&v1.GetConversationRequest{Id: second}))
	if err != nil || conv.Msg.GetConversation().GetMessageCount() != 3 {
		t.Errorf("the continued conversation: %v, %v; want its 3 messages", conv, err)
	} else if ms := conv.Msg.GetConversation().GetMessages(); len(ms) != 3 || len(ms[1].GetTools()) != 1 || ms[1].GetTools()[0].GetName() != "list_apps" {
		// The client sent the earlier reply back as it streamed (no blank
		// line between its rounds): it keeps its tool.
		t.Errorf("the continued conversation's earlier reply lost its tool: %v", ms)
	}
	if _, err := a.asst.DeleteConversation(ctx, connect.NewRequest(&v1.DeleteConversationRequest{Id: first})); err != nil {
		t.Errorf("delete: %v", err)
	}
	if list, err := a.asst.ListConversations(ctx, connect.NewRequest(&v1.ListConversationsRequest{})); err != nil || len(list.Msg.GetConversations()) != 1 {
		t.Errorf("alice's conversations after a delete: %v, %v", list, err)
	}
	if r := runChat(a, "", "hi"); connect.CodeOf(r.err) != connect.CodeFailedPrecondition ||
		!strings.Contains(r.err.Error(), "Anthropic refused your key (401: invalid x-api-key): check it in the assistant's settings") {
		t.Errorf("a refused key: %v", r.err)
	}

	// 5. A bad endpoint is refused when set.
	if _, err := a.asst.SetAssistantSettings(ctx, connect.NewRequest(&v1.SetAssistantSettingsRequest{
		Provider: v1.AssistantProvider_ASSISTANT_PROVIDER_OPENAI, Model: "m", BaseUrl: "ftp://example.com"})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("an ftp endpoint: %v", err)
	}

	// 6. Too many messages: the limit is 6 a minute, and 5 were sent.
	var refused error
	for range 4 {
		if r := runChat(a, "", "hi"); connect.CodeOf(r.err) == connect.CodeResourceExhausted {
			refused = r.err
			break
		}
	}
	if refused == nil || !strings.Contains(refused.Error(), "as many messages as it takes (6/1m): try again in") {
		t.Errorf("the 7th message in a minute: %v, want refused", refused)
	}
}
