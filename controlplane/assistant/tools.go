package assistant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/controlplane/validate"
	"github.com/gofastapi/gofastapi/proto/bundle"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// Tool results are cut to this size before they go back to the model.
const maxToolResult = 200 << 10

var (
	nameArg  = map[string]any{"type": "string", "description": "the app's name"}
	filesArg = map[string]any{"type": "array", "description": "files, each with its whole content",
		"items": map[string]any{"type": "object", "required": []string{"name", "content"},
			"properties": map[string]any{"name": map[string]any{"type": "string"}, "content": map[string]any{"type": "string"}}}}
	summaryArg = map[string]any{"type": "string", "description": "one sentence for the user saying what the change does"}
)

func object(required []string, props map[string]any) map[string]any {
	if required == nil {
		required = []string{}
	}
	return map[string]any{"type": "object", "required": required, "properties": props}
}

// tools are what the model may use. The read tools run at once, as the
// user; the write tools only propose, for the user to accept or reject.
var tools = []toolSpec{
	{"list_apps", "List the user's apps: name, status, URL, description.", object(nil, map[string]any{})},
	{"get_app", "Get one of the user's apps with its files (the saved draft, else the deployed version).",
		object([]string{"name"}, map[string]any{"name": nameArg})},
	{"get_app_logs", "Get an app's most recent log lines (its output, tracebacks and platform events).",
		object([]string{"name"}, map[string]any{"name": nameArg, "lines": map[string]any{"type": "integer", "description": "how many, 1-200 (default 50)"}})},
	{"list_databases", "List the user's platform databases (MongoDB), with the apps that use each and their sizes.", object(nil, map[string]any{})},
	{"validate_code", "Validate an app's files as a deploy would (syntax, allowed imports, an `app` defined, file limits).",
		object([]string{"files"}, map[string]any{"files": filesArg, "entrypoint": map[string]any{"type": "string", "description": "default app.py"}})},
	{"create_app", "Propose a new app with these files. The user accepts or rejects it.",
		object([]string{"name", "files", "summary"}, map[string]any{"name": nameArg, "files": filesArg, "summary": summaryArg})},
	{"update_app", "Propose changes to an app's files: give each changed or new file whole, and the names of files to remove. The user accepts (it becomes the app's draft) or rejects it.",
		object([]string{"name", "files", "summary"}, map[string]any{"name": nameArg, "files": filesArg, "summary": summaryArg,
			"remove": map[string]any{"type": "array", "items": map[string]any{"type": "string"}}})},
	{"delete_app", "Propose deleting an app. The user confirms or rejects it.",
		object([]string{"name", "summary"}, map[string]any{"name": nameArg, "summary": summaryArg})},
}

type fileArg struct {
	Name    string `json:"name"`
	Content string `json:"content"`
}

type toolArgs struct {
	Name       string    `json:"name"`
	Lines      int       `json:"lines"`
	Files      []fileArg `json:"files"`
	Remove     []string  `json:"remove"`
	Entrypoint string    `json:"entrypoint"`
	Summary    string    `json:"summary"`
}

// runTool runs call (a proposal is sent to the client as it is made) and
// returns what goes back to the model. A tool that fails is told to the
// model, which may try otherwise; only a failure to stream ends the chat.
func (s *Service) runTool(ctx context.Context, call *toolCall, send func(*v1.ChatResponse) error) (toolResult, error) {
	var args toolArgs
	var content, summary string
	var err error
	var proposal *v1.Proposal
	if !json.Valid(call.args) {
		call.args = json.RawMessage("{}")
		err = errors.New("the arguments were not valid JSON")
	} else if err = json.Unmarshal(call.args, &args); err != nil {
		err = fmt.Errorf("the arguments do not fit the tool: %v", err)
	} else {
		content, summary, proposal, err = s.tool(ctx, call.name, args)
	}
	use := &v1.ToolUse{Name: call.name, Arguments: string(call.args), Result: summary}
	if err != nil {
		msg := err.Error()
		var ce *connect.Error
		if errors.As(err, &ce) {
			msg = ce.Message()
		}
		content, use.Result, use.Failed = "error: "+msg, msg, true
	}
	if len(content) > maxToolResult {
		content = content[:maxToolResult] + "\n(cut here: too long)"
	}
	if err := send(&v1.ChatResponse{Event: &v1.ChatResponse_ToolUse{ToolUse: use}}); err != nil {
		return toolResult{}, err
	}
	if proposal != nil {
		if err := send(&v1.ChatResponse{Event: &v1.ChatResponse_Proposal{Proposal: proposal}}); err != nil {
			return toolResult{}, err
		}
	}
	return toolResult{id: call.id, content: content, failed: use.Failed}, nil
}

// tool runs one tool: what goes back to the model, a summary for the
// user, and for a write tool its proposal.
func (s *Service) tool(ctx context.Context, name string, a toolArgs) (string, string, *v1.Proposal, error) {
	switch name {
	case "list_apps":
		res, err := s.cfg.Apps.ListApps(ctx, connect.NewRequest(&v1.ListAppsRequest{}))
		if err != nil {
			return "", "", nil, err
		}
		type app struct{ Name, Status, URL, Description string }
		var out []app
		for _, x := range res.Msg.GetApps() {
			out = append(out, app{x.GetName(), statusText(x.GetStatus()), x.GetUrl(), x.GetDescription()})
		}
		return asJSON(out), fmt.Sprintf("%d apps", len(out)), nil, nil
	case "get_app":
		res, err := s.getApp(ctx, a.Name)
		if err != nil {
			return "", "", nil, err
		}
		x := res.GetApp()
		files := currentFiles(res)
		out := map[string]any{"name": x.GetName(), "description": x.GetDescription(), "entrypoint": x.GetEntrypoint(),
			"status": statusText(x.GetStatus()), "url": x.GetUrl(), "files": files}
		return asJSON(out), fmt.Sprintf("%s: %d files", x.GetName(), len(files)), nil, nil
	case "get_app_logs":
		n := a.Lines
		if n <= 0 || n > 200 {
			n = 50
		}
		res, err := s.cfg.Apps.GetLogs(ctx, connect.NewRequest(&v1.GetLogsRequest{IdOrName: a.Name, Limit: int32(n)}))
		if err != nil {
			return "", "", nil, err
		}
		var b strings.Builder
		for _, l := range res.Msg.GetLines() {
			fmt.Fprintf(&b, "%s %s %s\n", l.GetTime().AsTime().Format("15:04:05"), l.GetStream(), l.GetText())
		}
		return b.String(), fmt.Sprintf("%d lines", len(res.Msg.GetLines())), nil, nil
	case "list_databases":
		res, err := s.cfg.Databases.ListDatabases(ctx, connect.NewRequest(&v1.ListDatabasesRequest{}))
		if err != nil {
			return "", "", nil, err
		}
		type db struct {
			Name      string
			Default   bool
			Apps      []string
			SizeBytes int64
		}
		var out []db
		for _, d := range res.Msg.GetDatabases() {
			out = append(out, db{d.GetName(), d.GetDefault(), d.GetApps(), d.GetSizeBytes()})
		}
		return asJSON(out), fmt.Sprintf("%d databases", len(out)), nil, nil
	case "validate_code":
		probs, err := s.validate(ctx, toFiles(a.Files), a.Entrypoint)
		if err != nil {
			return "", "", nil, err
		}
		return problemsText(probs), fmt.Sprintf("%d problems", len(probs)), nil, nil
	case "create_app":
		return s.proposeCreate(ctx, a)
	case "update_app":
		return s.proposeUpdate(ctx, a)
	case "delete_app":
		res, err := s.getApp(ctx, a.Name)
		if err != nil {
			return "", "", nil, err
		}
		p := &v1.Proposal{Kind: v1.ProposalKind_PROPOSAL_KIND_DELETE_APP, App: res.GetApp().GetName(), Summary: a.Summary}
		return "proposed to the user, who confirms or rejects it", "proposed deleting " + p.App, p, nil
	}
	return "", "", nil, fmt.Errorf("there is no tool %q", name)
}

func (s *Service) getApp(ctx context.Context, name string) (*v1.GetAppResponse, error) {
	if name == "" {
		return nil, errors.New("name the app")
	}
	res, err := s.cfg.Apps.GetApp(ctx, connect.NewRequest(&v1.GetAppRequest{IdOrName: name}))
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

// currentFiles are an app's files: its draft, else its deployed version.
func currentFiles(res *v1.GetAppResponse) []fileArg {
	d := res.GetDraft()
	if d == nil {
		d = res.GetDeployed()
	}
	var out []fileArg
	for _, f := range d.GetFiles() {
		out = append(out, fileArg{f.GetName(), string(f.GetContent())})
	}
	return out
}

func (s *Service) proposeCreate(ctx context.Context, a toolArgs) (string, string, *v1.Proposal, error) {
	if a.Name == "" || len(a.Files) == 0 {
		return "", "", nil, errors.New("give the app's name and its files")
	}
	p := &v1.Proposal{Kind: v1.ProposalKind_PROPOSAL_KIND_CREATE_APP, App: a.Name, Summary: a.Summary}
	for _, f := range a.Files {
		p.Files = append(p.Files, &v1.FileChange{Name: f.Name, NewContent: f.Content})
	}
	return s.finishProposal(ctx, p, toFiles(a.Files), a.Entrypoint)
}

func (s *Service) proposeUpdate(ctx context.Context, a toolArgs) (string, string, *v1.Proposal, error) {
	res, err := s.getApp(ctx, a.Name)
	if err != nil {
		return "", "", nil, err
	}
	if len(a.Files) == 0 && len(a.Remove) == 0 {
		return "", "", nil, errors.New("give the files to change or add, or the names of files to remove")
	}
	cur := currentFiles(res)
	p := &v1.Proposal{Kind: v1.ProposalKind_PROPOSAL_KIND_UPDATE_APP, App: res.GetApp().GetName(), Summary: a.Summary}
	next := slices.Clone(cur)
	for _, f := range a.Files {
		i := slices.IndexFunc(next, func(c fileArg) bool { return c.Name == f.Name })
		old := ""
		if i >= 0 {
			old = next[i].Content
			next[i] = f
		} else {
			next = append(next, f)
		}
		if old != f.Content || i < 0 {
			p.Files = append(p.Files, &v1.FileChange{Name: f.Name, OldContent: old, NewContent: f.Content})
		}
	}
	for _, name := range a.Remove {
		i := slices.IndexFunc(next, func(c fileArg) bool { return c.Name == name })
		if i < 0 {
			return "", "", nil, fmt.Errorf("the app has no file %q to remove", name)
		}
		p.Files = append(p.Files, &v1.FileChange{Name: name, OldContent: next[i].Content, Removed: true})
		next = slices.Delete(next, i, i+1)
	}
	if len(p.Files) == 0 {
		return "", "", nil, errors.New("the files given are the app's as they are: nothing would change")
	}
	return s.finishProposal(ctx, p, toFiles(next), res.GetApp().GetEntrypoint())
}

// finishProposal validates the app's files after the change proposed and
// says how it went.
func (s *Service) finishProposal(ctx context.Context, p *v1.Proposal, files []bundle.File, entry string) (string, string, *v1.Proposal, error) {
	probs, err := s.validate(ctx, files, entry)
	if err != nil {
		return "", "", nil, err
	}
	for _, pr := range probs {
		p.Problems = append(p.Problems, &v1.ValidationError{File: pr.File, Line: int32(pr.Line), Column: int32(pr.Column), Message: pr.Message})
	}
	verb := map[v1.ProposalKind]string{v1.ProposalKind_PROPOSAL_KIND_CREATE_APP: "creating", v1.ProposalKind_PROPOSAL_KIND_UPDATE_APP: "changing"}[p.Kind]
	if len(probs) > 0 {
		return "proposed to the user, but validation found problems the user will see; propose a fixed version:\n" + problemsText(probs),
			fmt.Sprintf("proposed %s %s (%d problems)", verb, p.App, len(probs)), p, nil
	}
	return "proposed to the user, who accepts or rejects it; the files are valid",
		fmt.Sprintf("proposed %s %s (%d files)", verb, p.App, len(p.Files)), p, nil
}

func (s *Service) validate(ctx context.Context, files []bundle.File, entry string) ([]validate.Problem, error) {
	if len(files) == 0 {
		return nil, errors.New("give the files to validate")
	}
	if entry == "" {
		entry = "app.py"
	}
	return s.cfg.Validator.Check(ctx, files, entry)
}

func toFiles(fs []fileArg) []bundle.File {
	out := make([]bundle.File, len(fs))
	for i, f := range fs {
		out[i] = bundle.File{Name: f.Name, Content: []byte(f.Content)}
	}
	return out
}

func problemsText(probs []validate.Problem) string {
	if len(probs) == 0 {
		return "valid: no problems"
	}
	var b strings.Builder
	for _, p := range probs {
		if p.Line > 0 {
			fmt.Fprintf(&b, "%s:%d:%d: %s\n", p.File, p.Line, p.Column, p.Message)
		} else {
			fmt.Fprintf(&b, "%s: %s\n", p.File, p.Message)
		}
	}
	return b.String()
}

func statusText(st v1.AppStatus) string {
	return strings.ToLower(strings.TrimPrefix(st.String(), "APP_STATUS_"))
}

func asJSON(v any) string {
	b, _ := json.Marshal(v) // plain data always marshals
	return string(b)
}
