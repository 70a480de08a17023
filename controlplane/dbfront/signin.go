package dbfront

import (
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// signInError is a store that refused a client's account at sign-in
// (Config.SignInUpstream), or could not prove it knows the password. Its
// Error is for the operator's log and carries the store's reason; the
// client sees clientError, which carries none.
type signInError struct {
	user string
	err  error
}

func (e *signInError) Error() string {
	return fmt.Sprintf("sign in to the store as %s: %v", e.user, e.err)
}

func (e *signInError) Unwrap() error { return e.err }

func (e *signInError) clientError() *cmdError {
	return &cmdError{code: codeAuthenticationFailed, name: "AuthenticationFailed", msg: fmt.Sprintf(
		"the platform database accepted the credentials of %s, but its MongoDB server refused them: the MongoDB user the platform keeps for %s is missing or out of date. Retry in a minute (rotating the credentials with `gofastapi db rotate` also rewrites it); if it persists, tell the platform operator, whose log says why",
		e.user, e.user)}
}

// storeError is an error reply of the store to a command the front itself
// sent.
type storeError struct {
	code int64
	msg  string
}

func (e *storeError) Error() string { return fmt.Sprintf("%s (code %d)", e.msg, e.code) }

// signIn authenticates the store connection as the client's user with
// SCRAM-SHA-256 in the admin database, as a driver does, so that the
// store's own users and roles check every command that follows. The
// conversation verifies the store's signature too: a store that does not
// know the password cannot pass itself off as one that does.
func (c *conn) signIn() error {
	name := c.user.name
	cl, err := c.f.upstreamClient(c.user)
	if err != nil {
		return &signInError{user: name, err: err}
	}
	conv := cl.NewConversation()
	out, err := conv.Step("")
	if err != nil {
		return &signInError{user: name, err: err}
	}
	cmd := bson.D{
		{Key: "saslStart", Value: int32(1)},
		{Key: "mechanism", Value: "SCRAM-SHA-256"},
		{Key: "payload", Value: bson.Binary{Data: []byte(out)}},
		{Key: "options", Value: bson.D{{Key: "skipEmptyExchange", Value: true}}},
		{Key: "$db", Value: "admin"},
	}
	// Three steps at most: server-first, server-final, and the empty step
	// of a store that ignores skipEmptyExchange.
	for range 3 {
		reply, err := c.backendCommand(cmd)
		var se *storeError
		if errors.As(err, &se) {
			return &signInError{user: name, err: err}
		} else if err != nil {
			return err // the store's connection failed, not the user
		}
		_, payload, _ := reply.Lookup("payload").BinaryOK()
		done, _ := reply.Lookup("done").BooleanOK()
		out = ""
		if !conv.Done() {
			if out, err = conv.Step(string(payload)); err != nil {
				return &signInError{user: name, err: fmt.Errorf("SCRAM conversation: %w", err)}
			}
		}
		if done {
			if !conv.Done() || !conv.Valid() {
				return &signInError{user: name, err: errors.New("store ended the SCRAM conversation before proving its signature")}
			}
			return nil
		}
		cmd = bson.D{
			{Key: "saslContinue", Value: int32(1)},
			{Key: "conversationId", Value: reply.Lookup("conversationId")},
			{Key: "payload", Value: bson.Binary{Data: []byte(out)}},
			{Key: "$db", Value: "admin"},
		}
	}
	return &signInError{user: name, err: errors.New("SCRAM conversation did not end")}
}

// backendCommand runs one command of the front's own on the store
// connection and returns the reply, or the store's error.
func (c *conn) backendCommand(cmd bson.D) (bson.Raw, error) {
	body, err := bson.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	h, rb, err := c.exchange(opMsg, (&msg{body: body}).encode())
	if err != nil {
		return nil, err
	}
	if h.opCode != opMsg {
		return nil, errBadMessage
	}
	rm, err := parseMsg(rb)
	if err != nil {
		return nil, err
	}
	if ok, _ := rm.body.Lookup("ok").AsFloat64OK(); ok != 1 {
		msg, _ := rm.body.Lookup("errmsg").StringValueOK()
		code, _ := rm.body.Lookup("code").AsInt64OK()
		return nil, &storeError{code: code, msg: msg}
	}
	return rm.body, nil
}
