package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"testing"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// role is who makes a call in the authorization matrix.
type role int

const (
	roleAnonymous role = iota // no session
	roleOther                 // a user who owns nothing the call names
	roleOwner                 // the user who owns what the call names
	roleAdmin                 // an admin who does not own it
)

var roles = []role{roleAnonymous, roleOther, roleOwner, roleAdmin}

func (r role) String() string { return [...]string{"anonymous", "other", "owner", "admin"}[r] }

// codeOK is the "code" of a call that succeeded.
const codeOK connect.Code = 0

// codes is the expected outcome of a call per role, indexed by role.
type codes [4]connect.Code

var (
	public    = codes{codeOK, codeOK, codeOK, codeOK}
	signedIn  = codes{connect.CodeUnauthenticated, codeOK, codeOK, codeOK} // acts on the caller's own account only
	ownerOnly = codes{connect.CodeUnauthenticated, connect.CodeNotFound, codeOK, connect.CodeNotFound}
	adminOnly = codes{connect.CodeUnauthenticated, connect.CodePermissionDenied, connect.CodePermissionDenied, codeOK}
	// ownerOrAdmin reads what the call names: its owner and admins may,
	// others learn nothing of it.
	ownerOrAdmin = codes{connect.CodeUnauthenticated, connect.CodeNotFound, codeOK, codeOK}
	notServed    = codes{connect.CodeUnimplemented, connect.CodeUnimplemented, connect.CodeUnimplemented, connect.CodeUnimplemented}
)

func codeName(c connect.Code) string {
	if c == codeOK {
		return "ok"
	}
	return c.String()
}

// access is the rule of one RPC.
type access struct {
	// req returns the request, in protojson, that role r sends.
	req func(r role) string
	// before runs before each role's call, to (re)create what the call
	// acts on.
	before func(r role)
	// fresh gives the call a new session of the role, because the call
	// ends the session it uses.
	fresh bool
	want  codes
}

func static(json string) func(role) string { return func(role) string { return json } }

// matrix is the platform and users of TestAuthorizationMatrix.
type matrix struct {
	t        *testing.T
	p        *platform
	tokens   [4]string
	names    [4]string
	password string
}

func (m *matrix) login(r role) string {
	m.t.Helper()
	res, err := m.p.as("").auth.Login(context.Background(), connect.NewRequest(&v1.LoginRequest{Username: m.names[r], Password: m.password}))
	if err != nil {
		m.t.Fatalf("login %s: %v", m.names[r], err)
	}
	return res.Msg.GetToken()
}

// call makes one call of method md with token and returns its error.
func (m *matrix) call(md protoreflect.MethodDescriptor, token, reqJSON string) error {
	m.t.Helper()
	in := dynamicpb.NewMessage(md.Input())
	if err := protojson.Unmarshal([]byte(reqJSON), in); err != nil {
		m.t.Fatalf("%s: request %s: %v", md.FullName(), reqJSON, err)
	}
	procedure := "/" + string(md.Parent().FullName()) + "/" + string(md.Name())
	client := connect.NewClient[dynamicpb.Message, dynamicpb.Message](http.DefaultClient, m.p.url()+procedure,
		connect.WithSchema(md), connect.WithInterceptors(bearer(token)),
		connect.WithResponseInitializer(func(spec connect.Spec, msg any) error {
			*msg.(*dynamicpb.Message) = *dynamicpb.NewMessage(md.Output())
			return nil
		}))
	ctx := context.Background()
	switch {
	case md.IsStreamingClient():
		m.t.Fatalf("%s: client-streaming calls are not in the matrix yet: add them to matrix.call", md.FullName())
	case md.IsStreamingServer():
		s, err := client.CallServerStream(ctx, connect.NewRequest(in))
		if err != nil {
			return err
		}
		for s.Receive() {
		}
		return s.Err()
	}
	_, err := client.CallUnary(ctx, connect.NewRequest(in))
	return err
}

// TestAuthorizationMatrix calls every RPC of every service in the API's
// proto package, found through the generated descriptors, as an anonymous
// caller, another user, the owner of what the call names and an admin, and
// checks each outcome against the table. An RPC without a rule fails the
// test, so no RPC ships without one; so does a rule for an RPC that no
// longer exists. The gateway's own endpoints follow.
func TestAuthorizationMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel()
	dns := startDNS(t)
	dns.set("www.owned-example.test", "owned.localhost")
	p := startPlatform(t, t.TempDir(), t.TempDir(), "--warm", "0", "--signin-rate-per-address", "0", "--signin-rate-per-user", "0",
		"--dns-resolver", dns.addr())
	m := &matrix{t: t, p: p, password: "matrix password", names: [4]string{"", "other", "owner", "root"}}
	m.tokens[roleAdmin], _ = p.signup(t, "root", m.password) // the first user: admin
	m.tokens[roleOwner], _ = p.signup(t, "owner", m.password)
	m.tokens[roleOther], _ = p.signup(t, "other", m.password)
	p.signup(t, "target", m.password) // what admin calls act on
	first := p.deploy(t, m.tokens[roleOwner], "owned", fmt.Sprintf(helloApp, "owned"))
	ownerTemplate := func() string {
		t.Helper()
		res, err := p.as(m.tokens[roleOwner]).tmpl.CreateTemplate(context.Background(), connect.NewRequest(&v1.CreateTemplateRequest{
			Name: "mine", FromApp: "owned"}))
		if err != nil {
			t.Fatalf("create template: %v", err)
		}
		return res.Msg.GetTemplate().GetId()
	}
	var tmplID string
	redeploys := 0

	appJSON := `{"idOrName":"owned"}`
	domainJSON := `{"idOrName":"owned","domain":"www.owned-example.test"}`
	deployJSON := fmt.Sprintf(`{"idOrName":"owned","files":[{"name":"app.py","content":%q}]}`,
		base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf(helloApp, "redeployed"))))
	var ownerSession string // set by before: a session of the owner to revoke
	rules := map[protoreflect.FullName]access{
		"gofastapi.v1.AuthService.Signup": {want: public,
			req: func(r role) string { return fmt.Sprintf(`{"username":"signup-%s","password":"long enough"}`, r) }},
		"gofastapi.v1.AuthService.Login": {want: public,
			req: static(`{"username":"owner","password":"matrix password"}`)},
		"gofastapi.v1.AuthService.Logout":       {want: signedIn, fresh: true, req: static(`{}`)},
		"gofastapi.v1.AuthService.Me":           {want: signedIn, req: static(`{}`)},
		"gofastapi.v1.AuthService.ListSessions": {want: signedIn, req: static(`{}`)},
		"gofastapi.v1.AuthService.RevokeSession": {want: ownerOnly,
			before: func(role) { ownerSession = sessionID(m.login(roleOwner)) },
			req:    func(role) string { return fmt.Sprintf(`{"id":%q}`, ownerSession) }},
		// Each caller changes only their own password (to the same one),
		// which is why this needs no owner.
		"gofastapi.v1.AuthService.ChangePassword": {want: signedIn,
			req: static(`{"currentPassword":"matrix password","newPassword":"matrix password"}`)},

		"gofastapi.v1.AppService.CreateApp": {want: signedIn,
			req: func(r role) string { return fmt.Sprintf(`{"name":"new-%s"}`, r) }},
		"gofastapi.v1.AppService.GetApp":         {want: ownerOnly, req: static(appJSON)},
		"gofastapi.v1.AppService.ListApps":       {want: signedIn, req: static(`{}`)},
		"gofastapi.v1.AppService.Deploy":         {want: ownerOnly, req: static(deployJSON)},
		"gofastapi.v1.AppService.GetLogs":        {want: ownerOnly, req: static(appJSON)},
		"gofastapi.v1.AppService.ListColdStarts": {want: ownerOnly, req: static(appJSON)},
		"gofastapi.v1.AppService.DeleteApp": {want: ownerOnly, req: static(`{"idOrName":"doomed"}`),
			before: func(role) { p.createApp(t, m.tokens[roleOwner], "doomed") }},
		"gofastapi.v1.AppService.UpdateApp":    {want: ownerOnly, req: static(`{"idOrName":"owned","description":"changed"}`)},
		"gofastapi.v1.AppService.SaveDraft":    {want: ownerOnly, req: static(deployJSON)},
		"gofastapi.v1.AppService.ListVersions": {want: ownerOnly, req: static(appJSON)},
		"gofastapi.v1.AppService.GetVersion":   {want: ownerOnly, req: static(fmt.Sprintf(`{"idOrName":"owned","version":%q}`, first))},
		// Each role's call finds a newer version deployed, so the owner's
		// rollback to the first one has something to do.
		"gofastapi.v1.AppService.Rollback": {want: ownerOnly,
			before: func(role) {
				redeploys++
				p.deploy(t, m.tokens[roleOwner], "owned", fmt.Sprintf(helloApp, fmt.Sprint("again ", redeploys)))
			},
			req: static(fmt.Sprintf(`{"idOrName":"owned","version":%q}`, first))},
		"gofastapi.v1.AppService.CloneApp": {want: ownerOnly,
			req: func(r role) string { return fmt.Sprintf(`{"idOrName":"owned","newName":"clone-%s"}`, r) }},
		"gofastapi.v1.AppService.ListEnv": {want: ownerOnly, req: static(appJSON)},
		"gofastapi.v1.AppService.SetEnv":  {want: ownerOnly, req: static(`{"idOrName":"owned","vars":[{"name":"K","value":"v"}]}`)},
		"gofastapi.v1.AppService.UnsetEnv": {want: ownerOnly,
			before: func(role) {
				_, err := p.as(m.tokens[roleOwner]).apps.SetEnv(context.Background(), connect.NewRequest(&v1.SetEnvRequest{
					IdOrName: "owned", Vars: []*v1.EnvAssignment{{Name: "GONE", Value: "x"}}}))
				if err != nil {
					t.Fatal(err)
				}
			},
			req: static(`{"idOrName":"owned","names":["GONE"]}`)},
		"gofastapi.v1.AssistantService.GetAssistantSettings": {want: signedIn, req: static(`{}`)},
		// No key is ever set here, so a chat goes as far as asking for one.
		"gofastapi.v1.AssistantService.SetAssistantSettings": {want: signedIn,
			req: static(`{"provider":"ASSISTANT_PROVIDER_ANTHROPIC","model":"claude-sonnet-4-5"}`)},
		"gofastapi.v1.AssistantService.Chat": {want: codes{connect.CodeUnauthenticated, connect.CodeFailedPrecondition,
			connect.CodeFailedPrecondition, connect.CodeFailedPrecondition}, req: static(`{"messages":[{"role":"user","content":"hi"}]}`)},
		"gofastapi.v1.AssistantService.ListConversations": {want: signedIn, req: static(`{}`)},
		// Whose a conversation is: TestAssistant (another user's is not
		// found); here no conversation is stored (no key, no chat), so a
		// signed-in caller of any role finds none of that id.
		"gofastapi.v1.AssistantService.GetConversation": {want: codes{connect.CodeUnauthenticated, connect.CodeNotFound,
			connect.CodeNotFound, connect.CodeNotFound}, req: static(`{"id":"0123456789abcdef01234567"}`)},
		"gofastapi.v1.AssistantService.DeleteConversation": {want: codes{connect.CodeUnauthenticated, connect.CodeNotFound,
			connect.CodeNotFound, connect.CodeNotFound}, req: static(`{"id":"0123456789abcdef01234567"}`)},
		"gofastapi.v1.AssistantService.DecideProposal": {want: codes{connect.CodeUnauthenticated, connect.CodeNotFound,
			connect.CodeNotFound, connect.CodeNotFound}, req: static(`{"conversationId":"0123456789abcdef01234567","message":1,"decision":"PROPOSAL_DECISION_ACCEPTED"}`)},
		"gofastapi.v1.AppService.AddDomain": {want: ownerOnly, req: static(domainJSON)},
		"gofastapi.v1.AppService.RemoveDomain": {want: ownerOnly, req: static(domainJSON),
			before: func(role) {
				// What the owner's call removes.
				if _, err := p.as(m.tokens[roleOwner]).apps.AddDomain(context.Background(), connect.NewRequest(&v1.AddDomainRequest{
					IdOrName: "owned", Domain: "www.owned-example.test"})); err != nil {
					t.Fatalf("add domain: %v", err)
				}
			}},
		"gofastapi.v1.AppService.WatchEvents": {want: ownerOnly, req: static(appJSON)},
		"gofastapi.v1.AppService.WatchLogs":   {want: ownerOnly, req: static(appJSON)},

		"gofastapi.v1.TemplateService.ListTemplates": {want: signedIn, req: static(`{}`)},
		"gofastapi.v1.TemplateService.GetTemplate": {want: ownerOnly,
			before: func(role) { tmplID = ownerTemplate() },
			req:    func(role) string { return fmt.Sprintf(`{"id":%q}`, tmplID) }},
		"gofastapi.v1.TemplateService.CreateTemplate": {want: signedIn,
			req: static(fmt.Sprintf(`{"name":"t","files":[{"name":"app.py","content":%q}]}`,
				base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf(helloApp, "t")))))},
		"gofastapi.v1.TemplateService.UpdateTemplate": {want: ownerOnly,
			before: func(role) { tmplID = ownerTemplate() },
			req:    func(role) string { return fmt.Sprintf(`{"id":%q,"name":"renamed"}`, tmplID) }},
		"gofastapi.v1.TemplateService.DeleteTemplate": {want: ownerOnly,
			before: func(role) { tmplID = ownerTemplate() },
			req:    func(role) string { return fmt.Sprintf(`{"id":%q}`, tmplID) }},

		"gofastapi.v1.AdminService.ListUsers": {want: adminOnly, req: static(`{}`)},
		"gofastapi.v1.AdminService.CreateUser": {want: adminOnly,
			req: func(r role) string { return fmt.Sprintf(`{"username":"made-by-%s","password":"long enough"}`, r) }},
		"gofastapi.v1.AdminService.SetAdmin": {want: adminOnly, req: static(`{"user":"target","admin":false}`)},
		"gofastapi.v1.AdminService.DeleteUser": {want: adminOnly,
			before: func(r role) { p.signup(t, "victim-"+r.String(), m.password) },
			req:    func(r role) string { return fmt.Sprintf(`{"user":"victim-%s"}`, r) }},
		"gofastapi.v1.AdminService.SetLimits":      {want: adminOnly, req: static(`{"user":"target","tier":"pro"}`)},
		"gofastapi.v1.AdminService.GetSettings":    {want: adminOnly, req: static(`{}`)},
		"gofastapi.v1.AdminService.UpdateSettings": {want: adminOnly, req: static(`{"publicSignups":true}`)},
		"gofastapi.v1.AdminService.GetStats":       {want: adminOnly, req: static(`{}`)},
		"gofastapi.v1.AdminService.ListActivity":   {want: adminOnly, req: static(`{}`)},

		"gofastapi.v1.MetricsService.GetAppStats": {want: ownerOrAdmin, req: static(appJSON)},
		"gofastapi.v1.MetricsService.ListErrors":  {want: ownerOrAdmin, req: static(appJSON)},
		"gofastapi.v1.MetricsService.GetHealth":   {want: ownerOrAdmin, req: static(appJSON)},

		// The runners' control API is served by each runner agent, never
		// by the platform API.
		"gofastapi.v1.RunnerService.Specialize": {want: notServed, req: static(`{"appId":"x","version":"y"}`)},
		// The pool manager's API for gateways is served by `gofastapi pool`
		// to holders of the pool token (pool/poolrpc tests that), never by
		// the platform API.
		"gofastapi.v1.PoolService.Claim":   {want: notServed, req: static(`{"specialize":{"appId":"x","version":"y"}}`)},
		"gofastapi.v1.PoolService.Touch":   {want: notServed, req: static(`{}`)},
		"gofastapi.v1.PoolService.Release": {want: notServed, req: static(`{"runnerId":"x"}`)},
	}

	for name, rule := range databaseRules(t, m) {
		rules[name] = rule
	}
	seen := map[protoreflect.FullName]bool{}
	protoregistry.GlobalFiles.RangeFilesByPackage("gofastapi.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				md := sd.Methods().Get(j)
				seen[md.FullName()] = true
				rule, found := rules[md.FullName()]
				if !found {
					t.Errorf("%s has no authorization rule: add one to TestAuthorizationMatrix", md.FullName())
					continue
				}
				t.Run(string(md.FullName()), func(t *testing.T) {
					for _, r := range roles {
						if rule.before != nil {
							rule.before(r)
						}
						token := m.tokens[r]
						if rule.fresh && r != roleAnonymous {
							token = m.login(r)
						}
						err := m.call(md, token, rule.req(r))
						if got := codeOf(err); got != rule.want[r] {
							t.Errorf("as %s: %s (%v), want %s", r, codeName(got), err, codeName(rule.want[r]))
						}
					}
				})
			}
		}
		return true
	})
	for name := range rules {
		if !seen[name] {
			t.Errorf("rule for %s, which is not an RPC of the API: remove it", name)
		}
	}

	// The gateway's own endpoints answer the same whoever asks: the API
	// host's health check, the debug endpoint (off unless
	// --debug-endpoints), /metrics (never on the public port), gRPC reflection (the API's schema is public), and
	// apps, which are public web sites.
	h2c := &http.Client{Transport: &http.Transport{Protocols: unencryptedHTTP2()}}
	endpoints := []struct {
		name string
		do   func(token string) int // HTTP status
		want int
	}{
		{name: "GET /healthz", want: 200, do: func(token string) int { return p.httpGet(t, "", "/healthz", token) }},
		{name: "GET /debug/pool", want: 404, do: func(token string) int { return p.httpGet(t, "", "/debug/pool", token) }},
		// Operators' metrics are on the internal listener only.
		{name: "GET /metrics", want: 404, do: func(token string) int { return p.httpGet(t, "", "/metrics", token) }},
		{name: "GET owned.localhost/", want: 200, do: func(token string) int { return p.httpGet(t, "owned", "/", token) }},
		{name: "gRPC reflection", want: 200, do: func(token string) int {
			hdr := http.Header{}
			if token != "" {
				hdr.Set("Authorization", "Bearer "+token)
			}
			s := grpcreflect.NewClient(h2c, p.url(), connect.WithGRPC()).NewStream(context.Background(), grpcreflect.WithRequestHeaders(hdr))
			defer s.Close()
			names, err := s.ListServices()
			if err != nil || len(names) == 0 {
				t.Logf("reflection: %v", err)
				return 500
			}
			return 200
		}},
	}
	for _, e := range endpoints {
		t.Run(e.name, func(t *testing.T) {
			for _, r := range roles {
				if got := e.do(m.tokens[r]); got != e.want {
					t.Errorf("as %s: %d, want %d", r, got, e.want)
				}
			}
		})
	}
}

// codeOf is connect.CodeOf, with ok for no error.
func codeOf(err error) connect.Code {
	if err == nil {
		return codeOK
	}
	return connect.CodeOf(err)
}

// sessionID is the id of the session of token, as ListSessions shows it.
func sessionID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// httpGet requests path on the API host (slug "") or app slug, with token
// as a Bearer header when not empty, and returns the status.
func (p *platform) httpGet(t *testing.T, slug, path, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", p.url()+path, nil)
	if slug != "" {
		req.Host = slug + ".localhost:" + p.port
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", slug, path, err)
	}
	res.Body.Close()
	return res.StatusCode
}
