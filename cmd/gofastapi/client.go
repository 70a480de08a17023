package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

const defaultServer = "http://localhost:8080"

// credentials is what `login` saves for later commands.
type credentials struct {
	Server string `json:"server"`
	Token  string `json:"token"`
}

func credentialsPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config directory for the login token: set GOFASTAPI_TOKEN instead: %w", err)
	}
	return filepath.Join(dir, "gofastapi", "credentials.json"), nil
}

func loadCredentials() credentials {
	var c credentials
	if p, err := credentialsPath(); err == nil {
		if b, err := os.ReadFile(p); err == nil {
			json.Unmarshal(b, &c)
		}
	}
	return c
}

func saveCredentials(c credentials) (string, error) {
	p, err := credentialsPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", err
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	return p, os.WriteFile(p, b, 0o600)
}

// client holds the API clients of one CLI command.
type client struct {
	server string
	token  string
	auth   gofastapiv1connect.AuthServiceClient
	apps   gofastapiv1connect.AppServiceClient
	tmpl   gofastapiv1connect.TemplateServiceClient
	// watch is apps without the overall time limit, for streams that
	// follow an app until interrupted.
	watch gofastapiv1connect.AppServiceClient
}

// clientFlags adds --server to fs and returns a constructor for the client,
// to be called after fs.Parse.
func clientFlags(fs *flag.FlagSet) func() *client {
	server := fs.String("server", "", "platform URL [GOFASTAPI_SERVER] (default: the server you logged in to, else "+defaultServer+")")
	return func() *client {
		saved := loadCredentials()
		s := firstNonEmpty(*server, os.Getenv("GOFASTAPI_SERVER"), saved.Server, defaultServer)
		token := os.Getenv("GOFASTAPI_TOKEN")
		if token == "" && strings.TrimRight(saved.Server, "/") == strings.TrimRight(s, "/") {
			token = saved.Token
		}
		return newClient(s, token)
	}
}

func newClient(server, token string) *client {
	server = strings.TrimRight(server, "/")
	hc := &http.Client{Timeout: 5 * time.Minute}
	opts := connect.WithInterceptors(bearer(token))
	return &client{
		server: server, token: token,
		auth:  gofastapiv1connect.NewAuthServiceClient(hc, server, opts),
		apps:  gofastapiv1connect.NewAppServiceClient(hc, server, opts),
		tmpl:  gofastapiv1connect.NewTemplateServiceClient(hc, server, opts),
		watch: gofastapiv1connect.NewAppServiceClient(&http.Client{}, server, opts),
	}
}

// bearer sends the session token on every call.
func bearer(token string) connect.Interceptor {
	return &bearerInterceptor{token: token}
}

type bearerInterceptor struct{ token string }

func (b *bearerInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if b.token != "" {
			req.Header().Set("Authorization", "Bearer "+b.token)
		}
		return next(ctx, req)
	}
}

func (b *bearerInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		if b.token != "" {
			conn.RequestHeader().Set("Authorization", "Bearer "+b.token)
		}
		return conn
	}
}

func (b *bearerInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// explain turns an API error into the message shown to the user, with one
// line per validation problem.
func explain(err error) error {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return err
	}
	var problems []string
	for _, d := range ce.Details() {
		m, derr := d.Value()
		if derr != nil {
			continue
		}
		if ve, ok := m.(*v1.ValidationError); ok {
			problems = append(problems, problemLine(ve))
		}
	}
	var b strings.Builder
	b.WriteString(ce.Message())
	// The message names the first problem; list them all when there are
	// more.
	if len(problems) > 1 || len(problems) == 1 && problems[0] != ce.Message() {
		for _, p := range problems {
			b.WriteString("\n  " + p)
		}
	}
	if ce.Code() == connect.CodeUnauthenticated {
		b.WriteString("\n  (run `gofastapi login` or set GOFASTAPI_TOKEN)")
	}
	return errors.New(b.String())
}

// problemLine renders a validation problem as FILE:LINE:COLUMN: MESSAGE,
// the way the server words the first one.
func problemLine(ve *v1.ValidationError) string {
	switch {
	case ve.GetFile() == "":
		return ve.GetMessage()
	case ve.GetLine() > 0:
		return fmt.Sprintf("%s:%d:%d: %s", ve.GetFile(), ve.GetLine(), ve.GetColumn(), ve.GetMessage())
	}
	return ve.GetFile() + ": " + ve.GetMessage()
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
