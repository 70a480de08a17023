// Package assistant is the AI assistant: a chat with a language model of
// the user's own (Anthropic, or an OpenAI-compatible API) that reads the
// user's apps, logs and databases through the platform's own services, as
// the user, and proposes changes for the user to accept or reject. It
// changes nothing itself: the web editor applies an accepted proposal with
// the API's ordinary calls.
package assistant

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/gofastapi/gofastapi/controlplane/auth"
	"github.com/gofastapi/gofastapi/controlplane/ratelimit"
	"github.com/gofastapi/gofastapi/controlplane/store"
	"github.com/gofastapi/gofastapi/controlplane/validate"
	"github.com/gofastapi/gofastapi/proto/bundle"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

// Limits of one chat.
const (
	maxMessages   = 100
	maxMessage    = 32 << 10
	maxHistory    = 256 << 10
	maxModelSteps = 8 // calls of the model per chat, each after its tools ran
	maxKey        = 512
	maxModelName  = 128
	chatTimeout   = 5 * time.Minute
)

// Store keeps users' assistant settings.
type Store interface {
	AssistantSettings(ctx context.Context, userID string) (*store.AssistantSettings, error)
	SetAssistantSettings(ctx context.Context, a *store.AssistantSettings) error
	DeleteAssistantSettings(ctx context.Context, userID string) (int64, error)
	ConversationStore
}

// Sealer seals keys at rest (see controlplane/secretbox).
type Sealer interface {
	Seal(plaintext []byte, label string) ([]byte, error)
	Open(sealed []byte, label string) ([]byte, error)
}

// Apps is what the tools read of the caller's apps: the AppService's own
// handlers, called with the caller's context, so they apply its rules.
type Apps interface {
	ListApps(context.Context, *connect.Request[v1.ListAppsRequest]) (*connect.Response[v1.ListAppsResponse], error)
	GetApp(context.Context, *connect.Request[v1.GetAppRequest]) (*connect.Response[v1.GetAppResponse], error)
	GetLogs(context.Context, *connect.Request[v1.GetLogsRequest]) (*connect.Response[v1.GetLogsResponse], error)
}

// Databases lists the caller's platform databases.
type Databases interface {
	ListDatabases(context.Context, *connect.Request[v1.ListDatabasesRequest]) (*connect.Response[v1.ListDatabasesResponse], error)
}

// Validator checks an app's files as a deploy would, with the import
// allowlist in force and the app's dependencies.
type Validator interface {
	Check(ctx context.Context, files []bundle.File, entrypoint string) ([]validate.Problem, error)
}

// Imports is the import allowlist in force.
type Imports interface {
	AllowedImports(ctx context.Context) ([]string, error)
}

// Packages is the dependency allowlist in force (see controlplane/deps).
type Packages interface {
	AllowedPackages(ctx context.Context) ([]string, error)
}

// Limiter counts chats per user.
type Limiter interface {
	Allow(ctx context.Context, key string, r ratelimit.Rate) (bool, time.Duration, error)
}

// Config configures a Service.
type Config struct {
	Store     Store
	Secrets   Sealer
	Apps      Apps
	Databases Databases
	Validator Validator
	Imports   Imports
	// Packages, when set (the platform has a package index), has the
	// system prompt say which packages requirements.txt may declare.
	Packages Packages
	Limiter  Limiter
	// Rate bounds each user's chats.
	Rate ratelimit.Rate
	// AnthropicURL is the root of Anthropic's API (tests point it at a
	// fake of their own).
	AnthropicURL string
	// AllowPrivateEndpoints lets users' OpenAI-compatible endpoints be on
	// private networks and plain http (a self-hosted model; tests).
	AllowPrivateEndpoints bool
	// Domain is the platform's apex domain, for the system prompt.
	Domain string
	Logger *slog.Logger
}

// Service implements gofastapiv1connect.AssistantServiceHandler.
type Service struct {
	cfg    Config
	client *http.Client
}

var _ gofastapiv1connect.AssistantServiceHandler = (*Service)(nil)

// NewService returns an AssistantService.
func NewService(cfg Config) (*Service, error) {
	switch {
	case cfg.Store == nil, cfg.Secrets == nil, cfg.Apps == nil, cfg.Databases == nil, cfg.Validator == nil,
		cfg.Imports == nil, cfg.Limiter == nil, cfg.Logger == nil:
		return nil, errors.New("assistant: Config lacks a dependency")
	case cfg.AnthropicURL == "":
		return nil, errors.New("assistant: Config.AnthropicURL is empty")
	}
	return &Service{cfg: cfg, client: httpClient(cfg.AllowPrivateEndpoints, chatTimeout)}, nil
}

func keyLabel(userID string) string { return "assistant-key:" + userID }

// GetAssistantSettings implements AssistantService.GetAssistantSettings.
func (s *Service) GetAssistantSettings(ctx context.Context, _ *connect.Request[v1.GetAssistantSettingsRequest]) (*connect.Response[v1.GetAssistantSettingsResponse], error) {
	u, err := auth.User(ctx)
	if err != nil {
		return nil, err
	}
	a, err := s.settings(ctx, u.ID)
	if err != nil {
		return nil, s.internal("get assistant settings", err)
	}
	return connect.NewResponse(&v1.GetAssistantSettingsResponse{Settings: settingsProto(a)}), nil
}

// SetAssistantSettings implements AssistantService.SetAssistantSettings.
func (s *Service) SetAssistantSettings(ctx context.Context, req *connect.Request[v1.SetAssistantSettingsRequest]) (*connect.Response[v1.SetAssistantSettingsResponse], error) {
	u, err := auth.User(ctx)
	if err != nil {
		return nil, err
	}
	m := req.Msg
	a, err := s.settings(ctx, u.ID)
	if err != nil {
		return nil, s.internal("get assistant settings", err)
	}
	a.Model = strings.TrimSpace(m.GetModel())
	a.BaseURL = ""
	switch m.GetProvider() {
	case v1.AssistantProvider_ASSISTANT_PROVIDER_ANTHROPIC:
		a.Provider = "anthropic"
	case v1.AssistantProvider_ASSISTANT_PROVIDER_OPENAI:
		a.Provider = "openai"
		a.BaseURL = strings.TrimRight(strings.TrimSpace(m.GetBaseUrl()), "/")
		if a.BaseURL == "" {
			a.BaseURL = "https://api.openai.com/v1"
		}
		if err := checkBaseURL(a.BaseURL, s.cfg.AllowPrivateEndpoints); err != nil {
			return nil, invalid("%v", err)
		}
	default:
		return nil, invalid("choose a provider: ASSISTANT_PROVIDER_ANTHROPIC or ASSISTANT_PROVIDER_OPENAI (an OpenAI-compatible API)")
	}
	if a.Model == "" || len(a.Model) > maxModelName {
		return nil, invalid("name the model (1-%d characters), such as claude-sonnet-4-5 or gpt-4o", maxModelName)
	}
	if m.ApiKey != nil {
		key := strings.TrimSpace(m.GetApiKey())
		a.SealedKey = nil
		if key != "" {
			if len(key) > maxKey {
				return nil, invalid("the API key is longer than %d characters: paste the key alone", maxKey)
			}
			if a.SealedKey, err = s.cfg.Secrets.Seal([]byte(key), keyLabel(u.ID)); err != nil {
				return nil, s.internal("seal key", err)
			}
		}
	}
	if err := s.cfg.Store.SetAssistantSettings(ctx, a); err != nil {
		return nil, s.internal("set assistant settings", err)
	}
	return connect.NewResponse(&v1.SetAssistantSettingsResponse{Settings: settingsProto(a)}), nil
}

// DeleteUserData removes userID's assistant settings (their key
// included). It implements admin.UserData.
func (s *Service) DeleteUserData(ctx context.Context, userID string) (map[string]int64, error) {
	out := map[string]int64{}
	n, err := s.cfg.Store.DeleteAssistantSettings(ctx, userID)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		out["assistant settings"] = n
	}
	if n, err = s.cfg.Store.DeleteConversations(ctx, userID); err != nil {
		return out, err
	}
	if n > 0 {
		out["assistant conversations"] = n
	}
	return out, nil
}

// settings returns userID's settings, or new ones for them.
func (s *Service) settings(ctx context.Context, userID string) (*store.AssistantSettings, error) {
	a, err := s.cfg.Store.AssistantSettings(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return &store.AssistantSettings{UserID: userID}, nil
	}
	return a, err
}

func settingsProto(a *store.AssistantSettings) *v1.AssistantSettings {
	p := &v1.AssistantSettings{Model: a.Model, BaseUrl: a.BaseURL, KeySet: len(a.SealedKey) > 0}
	switch a.Provider {
	case "anthropic":
		p.Provider = v1.AssistantProvider_ASSISTANT_PROVIDER_ANTHROPIC
	case "openai":
		p.Provider = v1.AssistantProvider_ASSISTANT_PROVIDER_OPENAI
	}
	return p
}

// Chat implements AssistantService.Chat: the model is called, its tools
// run and their results go back to it, until it answers without a tool
// (at most maxModelSteps calls).
func (s *Service) Chat(ctx context.Context, req *connect.Request[v1.ChatRequest], stream *connect.ServerStream[v1.ChatResponse]) error {
	u, err := auth.User(ctx)
	if err != nil {
		return err
	}
	turns, err := checkMessages(req.Msg.GetMessages())
	if err != nil {
		return err
	}
	ok, retry, err := s.cfg.Limiter.Allow(ctx, "assistant:"+u.ID, s.cfg.Rate)
	if err != nil {
		return s.internal("rate limit", err)
	}
	if !ok {
		return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
			"you have sent the assistant as many messages as it takes (%s): try again in %s", s.cfg.Rate, retry.Round(time.Second)))
	}
	conv, err := s.conversationFor(ctx, u.ID, req.Msg)
	if err != nil {
		return err
	}
	m, err := s.model(ctx, u.ID)
	if err != nil {
		return err
	}
	system, err := s.systemPrompt(ctx, req.Msg.GetApp())
	if err != nil {
		return s.internal("system prompt", err)
	}
	ctx, cancel := context.WithTimeout(ctx, chatTimeout)
	defer cancel()
	// The conversation is stored whatever becomes of the reply: the user's
	// message, and what of the reply was written, the tools it used and
	// the changes it proposed included.
	var reply strings.Builder
	var done store.ChatMessage
	send := func(r *v1.ChatResponse) error {
		switch ev := r.GetEvent().(type) {
		case *v1.ChatResponse_ToolUse:
			done.Tools = append(done.Tools, toolNote(ev.ToolUse))
		case *v1.ChatResponse_Proposal:
			done.Proposals = append(done.Proposals, proposalNote(ev.Proposal))
		}
		return stream.Send(r)
	}
	defer func() {
		done.Content = reply.String()
		s.saveConversation(ctx, conv, req.Msg.GetMessages(), done)
	}()
	if err := send(&v1.ChatResponse{Event: &v1.ChatResponse_ConversationId{ConversationId: conv.ID}}); err != nil {
		return err
	}
	for range maxModelSteps {
		var text strings.Builder
		calls, err := m.stream(ctx, system, turns, tools, func(piece string) error {
			if text.Len() == 0 && reply.Len() > 0 {
				reply.WriteString("\n\n") // the stored reply's rounds, apart
			}
			text.WriteString(piece)
			reply.WriteString(piece)
			return send(&v1.ChatResponse{Event: &v1.ChatResponse_Text{Text: piece}})
		})
		if err != nil {
			return s.modelFailed(ctx, err)
		}
		turns = append(turns, turn{role: "assistant", text: text.String(), calls: calls})
		if len(calls) == 0 {
			return nil
		}
		results := make([]toolResult, 0, len(calls))
		for i := range calls {
			r, err := s.runTool(ctx, &calls[i], send)
			if err != nil {
				return err
			}
			results = append(results, r)
		}
		turns = append(turns, turn{role: "tool", results: results})
	}
	stopped := fmt.Sprintf("\n\n(The assistant stopped after %d rounds of tools: ask again to go on.)", maxModelSteps)
	reply.WriteString(stopped)
	return send(&v1.ChatResponse{Event: &v1.ChatResponse_Text{Text: stopped}})
}

// checkMessages turns the client's conversation into turns.
func checkMessages(msgs []*v1.ChatMessage) ([]turn, error) {
	if len(msgs) == 0 {
		return nil, invalid("send at least one message")
	}
	if len(msgs) > maxMessages {
		return nil, invalid("the conversation has %d messages, at most %d: start a new one", len(msgs), maxMessages)
	}
	total := 0
	turns := make([]turn, 0, len(msgs))
	for i, m := range msgs {
		if m.GetRole() != "user" && m.GetRole() != "assistant" {
			return nil, invalid("message %d has role %q: want user or assistant", i+1, m.GetRole())
		}
		if len(m.GetContent()) > maxMessage {
			return nil, invalid("message %d is %d bytes, at most %d", i+1, len(m.GetContent()), maxMessage)
		}
		total += len(m.GetContent())
		turns = append(turns, turn{role: m.GetRole(), text: m.GetContent()})
	}
	if total > maxHistory {
		return nil, invalid("the conversation is %d bytes, at most %d: start a new one", total, maxHistory)
	}
	if msgs[len(msgs)-1].GetRole() != "user" || strings.TrimSpace(msgs[len(msgs)-1].GetContent()) == "" {
		return nil, invalid("the last message must be the user's, and not empty")
	}
	return turns, nil
}

// model is the caller's model, with their key opened.
func (s *Service) model(ctx context.Context, userID string) (model, error) {
	a, err := s.settings(ctx, userID)
	if err != nil {
		return nil, s.internal("get assistant settings", err)
	}
	if len(a.SealedKey) == 0 || a.Provider == "" {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New(
			"the assistant has no API key of yours: choose a provider and paste your key in the assistant's settings"))
	}
	key, err := s.cfg.Secrets.Open(a.SealedKey, keyLabel(userID))
	if err != nil {
		return nil, s.internal("open key", err)
	}
	if a.Provider == "anthropic" {
		return &anthropic{client: s.client, url: s.cfg.AnthropicURL, key: string(key), mdl: a.Model}, nil
	}
	if err := checkBaseURL(a.BaseURL, s.cfg.AllowPrivateEndpoints); err != nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("%v: change it in the assistant's settings", err))
	}
	return &openAI{client: s.client, url: a.BaseURL, key: string(key), mdl: a.Model}, nil
}

// modelFailed is the error of a chat whose model call failed.
func (s *Service) modelFailed(ctx context.Context, err error) error {
	var pe *providerError
	var ce *connect.Error
	switch {
	case errors.As(err, &ce):
		return err // the stream's own (the client went away)
	case ctx.Err() != nil:
		return connect.NewError(connect.CodeDeadlineExceeded, errors.New("the model did not finish in time: ask again, or for less at once"))
	case errors.As(err, &pe) && (pe.status == http.StatusUnauthorized || pe.status == http.StatusForbidden):
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("%s refused your key (%d: %s): check it in the assistant's settings", pe.provider, pe.status, pe.message))
	case errors.As(err, &pe) && (pe.status == http.StatusTooManyRequests || pe.status >= 500):
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf("%s is busy or failing (%d: %s): try again later", pe.provider, pe.status, pe.message))
	case errors.As(err, &pe):
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("%s refused the request (%d: %s): check the model's name in the assistant's settings", pe.provider, pe.status, pe.message))
	}
	s.cfg.Logger.Warn("assistant model call", "err", err)
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf("the model's API could not be reached or answered in a way the platform does not understand (%v): check the endpoint, or try again", err))
}

func invalid(format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
}

func (s *Service) internal(op string, err error) error {
	s.cfg.Logger.Error(op, "err", err)
	return connect.NewError(connect.CodeInternal, errors.New("internal error"))
}
