package dbfront

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"time"

	"github.com/xdg-go/scram"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// scramIterations is the PBKDF2 iteration count of derived keys, MongoDB's
// default for SCRAM-SHA-256.
const scramIterations = 15000

// authTimeout bounds how long a connection may stay unauthenticated.
const authTimeout = 30 * time.Second

// credCache keeps SCRAM keys derived from a password, since deriving them
// costs thousands of hash rounds and pools open connections in bursts.
type credCache struct {
	mu sync.Mutex
	m  map[string]cachedCred
}

type cachedCred struct {
	password string
	creds    scram.StoredCredentials
}

func (cc *credCache) get(a *Account) (scram.StoredCredentials, error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if c, ok := cc.m[a.Username]; ok && c.password == a.Password {
		return c.creds, nil
	}
	cl, err := scram.SHA256.NewClient(a.Username, a.Password, "")
	if err != nil {
		return scram.StoredCredentials{}, err
	}
	salt := make([]byte, 16)
	rand.Read(salt)
	creds, err := cl.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: scramIterations})
	if err != nil {
		return scram.StoredCredentials{}, err
	}
	if cc.m == nil {
		cc.m = map[string]cachedCred{}
	}
	cc.m[a.Username] = cachedCred{password: a.Password, creds: creds}
	return creds, nil
}

var errAuthFailed = &cmdError{code: codeAuthenticationFailed, name: "AuthenticationFailed", msg: "Authentication failed."}

// saslStart begins a SCRAM-SHA-256 conversation.
func (c *conn) saslStart(ctx context.Context, body bson.Raw) bson.Raw {
	if c.user != nil {
		return unauthorized("this connection is already authenticated").doc()
	}
	if mech, _ := body.Lookup("mechanism").StringValueOK(); mech != "SCRAM-SHA-256" {
		return (&cmdError{code: codeBadValue, name: "MechanismUnavailable", msg: "only SCRAM-SHA-256 is supported: use the PLATFORM_MONGO_URI as given (authMechanism=SCRAM-SHA-256)"}).doc()
	}
	_, payload, ok := body.Lookup("payload").BinaryOK()
	if !ok {
		return errAuthFailed.doc()
	}
	opts, _ := body.Lookup("options").DocumentOK()
	skip, _ := opts.Lookup("skipEmptyExchange").BooleanOK()
	c.skipEmpty = opts != nil && skip
	c.account = nil
	srv, err := scram.SHA256.NewServer(func(username string) (scram.StoredCredentials, error) {
		a, err := c.f.cfg.Accounts.Account(ctx, username)
		if err != nil {
			if !errors.Is(err, ErrNoAccount) {
				c.f.cfg.Logger.Warn("look up database account", "user", username, "err", err)
			}
			return scram.StoredCredentials{}, err
		}
		c.account = a
		return c.f.creds.get(a)
	})
	if err != nil {
		return errAuthFailed.doc()
	}
	c.conv = srv.NewConversation()
	out, err := c.conv.Step(string(payload))
	if err != nil {
		c.conv = nil
		return errAuthFailed.doc()
	}
	return saslReply(out, false)
}

// saslContinue carries a conversation on; when the client has proved its
// password the connection joins its user, within the connection limit.
func (c *conn) saslContinue(body bson.Raw) bson.Raw {
	if c.conv == nil {
		return (&cmdError{code: codeBadValue, name: "ProtocolError", msg: "saslContinue without saslStart"}).doc()
	}
	_, payload, _ := body.Lookup("payload").BinaryOK()
	if c.conv.Done() {
		// The client's empty last step, without skipEmptyExchange.
		c.conv = nil
		if c.user == nil {
			return errAuthFailed.doc()
		}
		return saslReply("", true)
	}
	out, err := c.conv.Step(string(payload))
	if err != nil || (c.conv.Done() && !c.conv.Valid()) || c.account == nil {
		c.conv = nil
		return errAuthFailed.doc()
	}
	if !c.conv.Done() {
		return saslReply(out, false)
	}
	u, cerr := c.f.admit(c, c.account)
	if cerr != nil {
		c.conv = nil
		c.closeAfterReply = true
		return cerr.doc()
	}
	c.user = u
	if c.f.cfg.SignInUpstream {
		// Sign in to the store now, so that a store that refuses the user
		// fails the client's authentication, where drivers report it,
		// rather than its first command.
		if err := c.dialBackend(); err != nil {
			c.conv = nil
			c.closeAfterReply = true
			var se *signInError
			if errors.As(err, &se) {
				return se.clientError().doc()
			}
			return (&cmdError{code: codeHostUnreachable, name: "HostUnreachable", msg: "the platform database is unreachable: retry in a minute"}).doc()
		}
	}
	if c.skipEmpty {
		c.conv = nil
		return saslReply(out, true)
	}
	return saslReply(out, false)
}

func saslReply(payload string, done bool) bson.Raw {
	b, _ := bson.Marshal(bson.D{
		{Key: "conversationId", Value: int32(1)},
		{Key: "done", Value: done},
		{Key: "payload", Value: bson.Binary{Data: []byte(payload)}},
		{Key: "ok", Value: 1.0},
	})
	return b
}
