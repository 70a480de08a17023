package assistant

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// turn is one turn of a conversation as the assistant keeps it between
// calls of the model: the user's text, the model's text and tool calls,
// or the results of those calls.
type turn struct {
	role    string // "user", "assistant" or "tool"
	text    string
	calls   []toolCall
	results []toolResult
}

type toolCall struct {
	id, name string
	args     json.RawMessage
}

type toolResult struct {
	id      string
	content string
	failed  bool
}

// toolSpec describes a tool to the model.
type toolSpec struct {
	name, description string
	schema            map[string]any // JSON Schema of its input
}

// model is a language model behind a provider's streaming API.
type model interface {
	// stream sends the conversation and calls text with each piece of
	// the reply as it arrives; it returns the reply's tool calls.
	stream(ctx context.Context, system string, turns []turn, tools []toolSpec, text func(string) error) ([]toolCall, error)
}

// providerError is a provider's refusal of a request.
type providerError struct {
	provider string
	status   int
	message  string
}

func (e *providerError) Error() string {
	return fmt.Sprintf("%s answered %d: %s", e.provider, e.status, e.message)
}

// maxEventLine bounds one line of a provider's event stream.
const maxEventLine = 1 << 20

// post sends body to url and returns the response of a 200, or a
// *providerError with the provider's own message.
func post(ctx context.Context, client *http.Client, provider, url string, header http.Header, body any) (*http.Response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header = header
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	res, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode == http.StatusOK {
		return res, nil
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	msg := strings.TrimSpace(string(raw))
	if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
		msg = e.Error.Message
	}
	return nil, &providerError{provider: provider, status: res.StatusCode, message: msg}
}

// events calls f with the data of each server-sent event of r.
func events(r io.Reader, f func(data []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxEventLine)
	for sc.Scan() {
		data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data:"))
		if !ok {
			continue
		}
		data = bytes.TrimSpace(data)
		if bytes.Equal(data, []byte("[DONE]")) {
			return nil
		}
		if err := f(data); err != nil {
			return err
		}
	}
	return sc.Err()
}

// anthropic is Anthropic's Messages API.
type anthropic struct {
	client        *http.Client
	url, key, mdl string
}

func (a *anthropic) stream(ctx context.Context, system string, turns []turn, tools []toolSpec, text func(string) error) ([]toolCall, error) {
	type block map[string]any
	var msgs []map[string]any
	for _, t := range turns {
		switch t.role {
		case "user":
			msgs = append(msgs, map[string]any{"role": "user", "content": t.text})
		case "assistant":
			var content []block
			if t.text != "" {
				content = append(content, block{"type": "text", "text": t.text})
			}
			for _, c := range t.calls {
				content = append(content, block{"type": "tool_use", "id": c.id, "name": c.name, "input": c.args})
			}
			if len(content) == 0 {
				content = append(content, block{"type": "text", "text": "(no reply)"})
			}
			msgs = append(msgs, map[string]any{"role": "assistant", "content": content})
		case "tool":
			var content []block
			for _, r := range t.results {
				content = append(content, block{"type": "tool_result", "tool_use_id": r.id, "content": r.content, "is_error": r.failed})
			}
			msgs = append(msgs, map[string]any{"role": "user", "content": content})
		}
	}
	var specs []map[string]any
	for _, t := range tools {
		specs = append(specs, map[string]any{"name": t.name, "description": t.description, "input_schema": t.schema})
	}
	h := http.Header{}
	h.Set("x-api-key", a.key)
	h.Set("anthropic-version", "2023-06-01")
	res, err := post(ctx, a.client, "Anthropic", strings.TrimRight(a.url, "/")+"/v1/messages", h, map[string]any{
		"model": a.mdl, "max_tokens": 8192, "system": system, "messages": msgs, "tools": specs, "stream": true,
	})
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var calls []toolCall
	var input []strings.Builder // per content block, the tool input JSON so far
	err = events(res.Body, func(data []byte) error {
		var ev struct {
			Type         string `json:"type"`
			Index        int    `json:"index"`
			ContentBlock struct {
				Type string `json:"type"`
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"content_block"`
			Delta struct {
				Type        string `json:"type"`
				Text        string `json:"text"`
				PartialJSON string `json:"partial_json"`
			} `json:"delta"`
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(data, &ev); err != nil {
			return fmt.Errorf("Anthropic's stream: %w", err)
		}
		for len(input) <= ev.Index {
			input = append(input, strings.Builder{})
			calls = append(calls, toolCall{})
		}
		switch ev.Type {
		case "content_block_start":
			if ev.ContentBlock.Type == "tool_use" {
				calls[ev.Index] = toolCall{id: ev.ContentBlock.ID, name: ev.ContentBlock.Name}
			}
		case "content_block_delta":
			switch ev.Delta.Type {
			case "text_delta":
				return text(ev.Delta.Text)
			case "input_json_delta":
				input[ev.Index].WriteString(ev.Delta.PartialJSON)
			}
		case "error":
			return &providerError{provider: "Anthropic", status: http.StatusOK, message: ev.Error.Message}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []toolCall
	for i, c := range calls {
		if c.name == "" {
			continue
		}
		c.args = json.RawMessage(orEmptyObject(input[i].String()))
		out = append(out, c)
	}
	return out, nil
}

// openAI is an OpenAI-compatible Chat Completions API.
type openAI struct {
	client        *http.Client
	url, key, mdl string
}

func (o *openAI) stream(ctx context.Context, system string, turns []turn, tools []toolSpec, text func(string) error) ([]toolCall, error) {
	msgs := []map[string]any{{"role": "system", "content": system}}
	for _, t := range turns {
		switch t.role {
		case "user":
			msgs = append(msgs, map[string]any{"role": "user", "content": t.text})
		case "assistant":
			m := map[string]any{"role": "assistant", "content": t.text}
			var tc []map[string]any
			for _, c := range t.calls {
				tc = append(tc, map[string]any{"id": c.id, "type": "function",
					"function": map[string]any{"name": c.name, "arguments": string(c.args)}})
			}
			if len(tc) > 0 {
				m["tool_calls"] = tc
			}
			msgs = append(msgs, m)
		case "tool":
			for _, r := range t.results {
				msgs = append(msgs, map[string]any{"role": "tool", "tool_call_id": r.id, "content": r.content})
			}
		}
	}
	var specs []map[string]any
	for _, t := range tools {
		specs = append(specs, map[string]any{"type": "function",
			"function": map[string]any{"name": t.name, "description": t.description, "parameters": t.schema}})
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+o.key)
	res, err := post(ctx, o.client, "the provider", strings.TrimRight(o.url, "/")+"/chat/completions", h, map[string]any{
		"model": o.mdl, "messages": msgs, "tools": specs, "stream": true,
	})
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	type partial struct {
		id, name string
		args     strings.Builder
	}
	var calls []*partial
	err = events(res.Body, func(data []byte) error {
		var chunk struct {
			Choices []struct {
				Delta struct {
					Content   string `json:"content"`
					ToolCalls []struct {
						Index    int    `json:"index"`
						ID       string `json:"id"`
						Function struct {
							Name      string `json:"name"`
							Arguments string `json:"arguments"`
						} `json:"function"`
					} `json:"tool_calls"`
				} `json:"delta"`
			} `json:"choices"`
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(data, &chunk); err != nil {
			return fmt.Errorf("the provider's stream: %w", err)
		}
		if chunk.Error.Message != "" {
			return &providerError{provider: "the provider", status: http.StatusOK, message: chunk.Error.Message}
		}
		for _, c := range chunk.Choices {
			for _, tc := range c.Delta.ToolCalls {
				if tc.Index < 0 || tc.Index > 64 {
					return errors.New("the provider's stream: tool call index out of range")
				}
				for len(calls) <= tc.Index {
					calls = append(calls, &partial{})
				}
				p := calls[tc.Index]
				if tc.ID != "" {
					p.id = tc.ID
				}
				p.name += tc.Function.Name
				p.args.WriteString(tc.Function.Arguments)
			}
			if c.Delta.Content != "" {
				if err := text(c.Delta.Content); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []toolCall
	for i, p := range calls {
		if p.name == "" {
			continue
		}
		id := p.id
		if id == "" {
			id = fmt.Sprintf("call_%d", i)
		}
		out = append(out, toolCall{id: id, name: p.name, args: json.RawMessage(orEmptyObject(p.args.String()))})
	}
	return out, nil
}

func orEmptyObject(s string) string {
	if strings.TrimSpace(s) == "" {
		return "{}"
	}
	return s
}
