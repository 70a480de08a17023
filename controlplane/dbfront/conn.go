package dbfront

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/xdg-go/scram"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// conn is one client connection and its own store connection.
type conn struct {
	f       *Front
	client  net.Conn
	backend net.Conn
	reqID   int32
	// signedIn is whether backend signed in to the store as user
	// (Config.SignInUpstream).
	signedIn bool

	// Authentication: user is set once the client proved its password.
	user            *user
	account         *Account
	conv            *scram.ServerConversation
	skipEmpty       bool
	closeAfterReply bool

	// cursors are the ids the store returned on this connection.
	cursors map[int64]bool
}

func (c *conn) serve() {
	defer c.f.drop(c)
	// A message the parsers did not foresee ends its connection, never the
	// platform.
	defer func() {
		if r := recover(); r != nil {
			c.f.cfg.Logger.Error("database front: connection failed", "panic", r)
		}
	}()
	defer c.client.Close()
	defer c.closeBackend()
	for {
		max := int32(maxMessageSize)
		if c.user == nil {
			c.client.SetReadDeadline(time.Now().Add(authTimeout))
			max = maxPreAuthMessageSize
		} else {
			c.client.SetReadDeadline(time.Time{})
		}
		h, body, err := readMessage(c.client, max)
		if err != nil {
			return
		}
		switch h.opCode {
		case opQuery:
			err = c.handleQuery(h, body)
		case opMsg:
			err = c.handleMsg(h, body)
		default:
			err = fmt.Errorf("opcode %d not supported", h.opCode)
		}
		if err != nil || c.closeAfterReply {
			return
		}
	}
}

func (c *conn) closeBackend() {
	if c.backend != nil {
		c.backend.Close()
		c.backend = nil
	}
	c.signedIn = false
	// The store's cursors die with its connection.
	clear(c.cursors)
}

// handleQuery answers the legacy OP_QUERY, which drivers use only for the
// first hello of a connection.
func (c *conn) handleQuery(h header, body []byte) error {
	q, err := parseQuery(body)
	if err != nil {
		return err
	}
	name := commandName(q.doc)
	if !strings.HasSuffix(q.collection, ".$cmd") || (name != "hello" && name != "isMaster" && name != "ismaster") {
		e := &cmdError{code: 352, name: "UnsupportedOpQueryCommand", msg: "OP_QUERY is only supported for hello; use a driver that speaks OP_MSG"}
		return writeMessage(c.client, c.nextID(), h.requestID, opReply, replyBody(2, e.doc()))
	}
	doc, wantMechs := helloRequest(q.doc)
	q.doc = doc
	rh, rb, err := c.roundTrip(opQuery, q.encode())
	if err != nil {
		return err
	}
	if rh.opCode != opReply {
		return errBadMessage
	}
	flags, rdoc, err := parseReply(rb)
	if err != nil {
		return err
	}
	return writeMessage(c.client, c.nextID(), h.requestID, opReply, replyBody(flags, helloResponse(rdoc, wantMechs)))
}

// helloRequest strips from a hello what the front answers itself
// (authentication) or does not offer (compression).
func helloRequest(doc bson.Raw) (bson.Raw, bool) {
	_, err := doc.LookupErr("saslSupportedMechs")
	return withFields(doc, []string{"speculativeAuthenticate", "saslSupportedMechs", "compression"}, nil), err == nil
}

func helloResponse(doc bson.Raw, wantMechs bool) bson.Raw {
	if !wantMechs {
		return doc
	}
	return withFields(doc, nil, bson.D{{Key: "saslSupportedMechs", Value: bson.A{"SCRAM-SHA-256"}}})
}

func (c *conn) nextID() int32 {
	c.reqID++
	return c.reqID
}

func (c *conn) handleMsg(h header, body []byte) error {
	m, err := parseMsg(body)
	if err != nil {
		return err
	}
	noReply := m.flags&flagMoreToCome != 0
	m.flags &^= flagExhaustAllowed | flagChecksumPresent
	reply, err := c.command(m)
	if err != nil {
		return err
	}
	if noReply {
		return nil
	}
	return writeMessage(c.client, c.nextID(), h.requestID, opMsg, replyMsg(reply))
}

// command checks one command, forwards it if it passes and returns the
// reply for the client.
func (c *conn) command(m *msg) (bson.Raw, error) {
	ctx := context.Background()
	name := commandName(m.body)
	db, _ := m.body.Lookup("$db").StringValueOK()
	switch name {
	case "saslStart":
		return c.saslStart(ctx, m.body), nil
	case "saslContinue":
		return c.saslContinue(m.body), nil
	}
	if c.user == nil && !handshake[name] {
		return unauthorized("command %s requires authentication: connect with the credentials in PLATFORM_MONGO_URI", name).doc(), nil
	}
	if handshake[name] {
		if name == "hello" || name == "isMaster" || name == "ismaster" {
			doc, wantMechs := helloRequest(m.body)
			m.body = doc
			reply, err := c.forward(m)
			if err != nil || reply == nil {
				return reply, err
			}
			return helloResponse(reply, wantMechs), nil
		}
		return c.forward(m)
	}
	u := c.user
	own := func(d string) bool { return c.f.own(u, d) }
	if cerr := check(name, db, m.body, own); cerr != nil {
		return cerr.doc(), nil
	}
	switch name {
	case "connectionStatus":
		b, _ := bson.Marshal(bson.D{
			{Key: "authInfo", Value: bson.D{
				{Key: "authenticatedUsers", Value: bson.A{bson.D{{Key: "user", Value: u.name}, {Key: "db", Value: "admin"}}}},
				{Key: "authenticatedUserRoles", Value: bson.A{}},
			}},
			{Key: "ok", Value: 1.0},
		})
		return b, nil
	case "getMore":
		id, _ := m.body.Lookup("getMore").Int64OK()
		if !c.cursors[id] {
			return (&cmdError{code: codeCursorNotFound, name: "CursorNotFound", msg: fmt.Sprintf("cursor id %d not found", id)}).doc(), nil
		}
	case "killCursors":
		ids, _ := m.body.Lookup("cursors").ArrayOK()
		vals, _ := ids.Values()
		for _, v := range vals {
			if id, ok := v.Int64OK(); !ok || !c.cursors[id] {
				return (&cmdError{code: codeCursorNotFound, name: "CursorNotFound", msg: fmt.Sprintf("cursor id %s not found", v.String())}).doc(), nil
			}
		}
	}
	size := int64(len(m.body))
	for _, s := range m.seqs {
		for _, d := range s.docs {
			size += int64(len(d))
		}
	}
	grows := writeCommands[name] || (name == "aggregate" && writesOut(m.body))
	if grows {
		if cerr := c.f.checkQuota(ctx, u, size); cerr != nil {
			return cerr.doc(), nil
		}
	}
	if name == "find" || name == "aggregate" || name == "findAndModify" || name == "findandmodify" {
		limit := c.f.cfg.QueryTimeout.Milliseconds()
		if limit < 1 {
			limit = 1
		}
		if v, ok := m.body.Lookup("maxTimeMS").AsInt64OK(); !ok || v <= 0 || v > limit {
			m.body = withFields(m.body, nil, bson.D{{Key: "maxTimeMS", Value: limit}})
		}
	}
	reply, err := c.forward(m)
	if err != nil || reply == nil {
		return reply, err
	}
	switch name {
	case "listDatabases":
		reply = filterDatabases(reply, own)
	case "killCursors":
		ids, _ := m.body.Lookup("cursors").ArrayOK()
		vals, _ := ids.Values()
		for _, v := range vals {
			id, _ := v.Int64OK()
			delete(c.cursors, id)
		}
	}
	if cur, ok := reply.Lookup("cursor").DocumentOK(); ok {
		if id, ok := cur.Lookup("id").Int64OK(); ok {
			if id != 0 {
				c.cursors[id] = true
			} else if name == "getMore" {
				id, _ := m.body.Lookup("getMore").Int64OK()
				delete(c.cursors, id)
			}
		}
	}
	if grows {
		u.wrote(size)
	}
	if freeingCommands[name] {
		c.f.freed(u)
	}
	return reply, nil
}

// writesOut reports whether an aggregation writes ($out or $merge).
func writesOut(body bson.Raw) bool {
	p, ok := body.Lookup("pipeline").ArrayOK()
	if !ok {
		return false
	}
	vals, _ := p.Values()
	for _, v := range vals {
		if d, ok := v.DocumentOK(); ok {
			if n := commandName(d); n == "$out" || n == "$merge" {
				return true
			}
		}
	}
	return false
}

// filterDatabases keeps the caller's own databases in a listDatabases
// reply.
func filterDatabases(reply bson.Raw, own ownFunc) bson.Raw {
	var doc bson.D
	if err := bson.Unmarshal(reply, &doc); err != nil {
		return reply
	}
	var total int64
	for i, e := range doc {
		if e.Key != "databases" {
			continue
		}
		list, _ := e.Value.(bson.A)
		kept := bson.A{}
		for _, d := range list {
			dd, _ := d.(bson.D)
			var name string
			for _, f := range dd {
				if f.Key == "name" {
					name, _ = f.Value.(string)
				}
				if f.Key == "sizeOnDisk" {
					switch n := f.Value.(type) {
					case int64:
						if own(name) {
							total += n
						}
					case int32:
						if own(name) {
							total += int64(n)
						}
					}
				}
			}
			if own(name) {
				kept = append(kept, dd)
			}
		}
		doc[i].Value = kept
	}
	for i, e := range doc {
		switch e.Key {
		case "totalSize":
			doc[i].Value = total
		case "totalSizeMb":
			doc[i].Value = total >> 20
		}
	}
	b, err := bson.Marshal(doc)
	if err != nil {
		return reply
	}
	return b
}

// forward sends m to the store and returns its reply, or nil when m asks
// for none. A store that has not answered shortly after the query time
// limit loses its connection, which stops the operation.
func (c *conn) forward(m *msg) (bson.Raw, error) {
	if m.flags&flagMoreToCome != 0 {
		if err := c.dialBackend(); err != nil {
			return nil, err
		}
		return nil, writeMessage(c.backend, c.nextID(), 0, opMsg, m.encode())
	}
	h, body, err := c.roundTrip(opMsg, m.encode())
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.closeBackend()
		return c.timeLimitError().doc(), nil
	}
	var se *signInError
	if errors.As(err, &se) {
		return se.clientError().doc(), nil
	}
	if err != nil {
		return nil, err
	}
	if h.opCode != opMsg {
		return nil, errBadMessage
	}
	rm, err := parseMsg(body)
	if err != nil {
		return nil, err
	}
	if code, ok := rm.body.Lookup("code").AsInt64OK(); ok && code == codeMaxTimeMSExpired {
		return c.timeLimitError().doc(), nil
	}
	return rm.body, nil
}

func (c *conn) timeLimitError() *cmdError {
	return &cmdError{code: codeMaxTimeMSExpired, name: "MaxTimeMSExpired", msg: fmt.Sprintf(
		"operation exceeded the platform database's time limit of %s and was stopped: add an index, narrow the filter or fetch fewer documents", c.f.cfg.QueryTimeout)}
}

// roundTrip sends one message to the store, on a connection signed in as
// the client's user where it must be, and reads its reply.
func (c *conn) roundTrip(op int32, body []byte) (header, []byte, error) {
	if err := c.dialBackend(); err != nil {
		return header{}, nil, err
	}
	return c.exchange(op, body)
}

// exchange sends one message on the open store connection and reads its
// reply.
func (c *conn) exchange(op int32, body []byte) (header, []byte, error) {
	id := c.nextID()
	if err := writeMessage(c.backend, id, 0, op, body); err != nil {
		c.closeBackend()
		return header{}, nil, err
	}
	t := c.f.cfg.QueryTimeout
	c.backend.SetReadDeadline(time.Now().Add(t + t/10 + 50*time.Millisecond))
	for {
		h, b, err := readMessage(c.backend, maxMessageSize)
		if err != nil {
			return h, nil, err
		}
		if h.responseTo == id {
			return h, b, nil
		}
	}
}

// dialBackend opens the store connection if there is none and, with
// Config.SignInUpstream, signs it in as the client's user once the client
// authenticated: before that it only carries the handshake commands, which
// need no user.
func (c *conn) dialBackend() error {
	if c.backend == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b, err := c.f.cfg.Dial(ctx)
		if err != nil {
			c.f.cfg.Logger.Error("dial the store", "err", err)
			return err
		}
		c.backend = b
	}
	if c.f.cfg.SignInUpstream && c.user != nil && !c.signedIn {
		if err := c.signIn(); err != nil {
			c.closeBackend()
			var se *signInError
			if errors.As(err, &se) {
				c.f.cfg.Logger.Error("database front: the store refused a user the front accepted; is its MongoDB user in step (mongousers)?", "user", c.user.name, "err", err)
			} else {
				c.f.cfg.Logger.Error("database front: sign in to the store", "user", c.user.name, "err", err)
			}
			return err
		}
		c.signedIn = true
	}
	return nil
}
