package mongotest

import (
	"encoding/binary"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// UserCommand is a user command a RolesProxy relayed: createUser,
// updateUser or dropUser, with the roles it carried as role@db.
type UserCommand struct {
	Verb, User string
	Roles      []string
}

// RolesProxy relays MongoDB's wire protocol to a Server and plays the part
// of MongoDB's roles, which FerretDB lacks: it records every user command
// with its roles, and forwards createUser and updateUser with an empty role
// list, which FerretDB takes. Everything else passes byte for byte, so a
// platform pointed at the proxy runs as it would against MongoDB, and a
// test checks the roles it gave.
type RolesProxy struct {
	// Addr is the proxy's host:port.
	Addr string
	srv  *Server

	mu    sync.Mutex
	got   []UserCommand
	conns map[net.Conn]struct{}
}

// URI is Server.URI through the proxy.
func (p *RolesProxy) URI(user, password string) string {
	return strings.Replace(p.srv.URI(user, password), p.srv.Addr, p.Addr, 1)
}

// AdminURI is Server.AdminURI through the proxy.
func (p *RolesProxy) AdminURI() string { return p.URI(AdminUser, p.srv.AdminPassword) }

// Commands returns the user commands relayed so far, in order.
func (p *RolesProxy) Commands() []UserCommand {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

// StartRolesProxy starts a RolesProxy in front of s for t.
func (s *Server) StartRolesProxy(t testing.TB) *RolesProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &RolesProxy{Addr: l.Addr().String(), srv: s, conns: map[net.Conn]struct{}{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", s.Addr)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = struct{}{}, struct{}{}
			p.mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(c, up); c.Close() }()
			go func() {
				defer wg.Done()
				p.relay(c, up)
				up.Close()
				p.mu.Lock()
				delete(p.conns, c)
				delete(p.conns, up)
				p.mu.Unlock()
			}()
		}
	}()
	return p
}

// relay copies messages from c to up, rewriting user commands.
func (p *RolesProxy) relay(c, up net.Conn) {
	defer c.Close()
	for {
		var h [16]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			return
		}
		n := binary.LittleEndian.Uint32(h[0:4])
		if n < 16 || n > 48_000_000 {
			return
		}
		body := make([]byte, n-16)
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		// OP_MSG without a checksum whose first section is the body.
		if binary.LittleEndian.Uint32(h[12:16]) == 2013 && len(body) > 9 && binary.LittleEndian.Uint32(body)&1 == 0 && body[4] == 0 {
			if nb, ok := p.rewrite(body); ok {
				body = nb
				binary.LittleEndian.PutUint32(h[0:4], uint32(16+len(body)))
			}
		}
		if _, err := up.Write(append(h[:], body...)); err != nil {
			return
		}
	}
}

// rewrite records a user command in the OP_MSG body b and returns b with
// its roles emptied.
func (p *RolesProxy) rewrite(b []byte) ([]byte, bool) {
	size := int(binary.LittleEndian.Uint32(b[5:9]))
	if size < 5 || 5+size > len(b) {
		return nil, false
	}
	var d bson.D
	if err := bson.Unmarshal(b[5:5+size], &d); err != nil || len(d) == 0 {
		return nil, false
	}
	verb := d[0].Key
	user, _ := d[0].Value.(string)
	if verb != "createUser" && verb != "updateUser" && verb != "dropUser" {
		return nil, false
	}
	cmd := UserCommand{Verb: verb, User: user}
	for i, e := range d {
		if e.Key != "roles" {
			continue
		}
		roles, _ := e.Value.(bson.A)
		for _, r := range roles {
			var role, db string
			rd, _ := r.(bson.D)
			for _, f := range rd {
				switch f.Key {
				case "role":
					role, _ = f.Value.(string)
				case "db":
					db, _ = f.Value.(string)
				}
			}
			cmd.Roles = append(cmd.Roles, role+"@"+db)
		}
		d[i].Value = bson.A{}
	}
	p.mu.Lock()
	p.got = append(p.got, cmd)
	p.mu.Unlock()
	nd, err := bson.Marshal(d)
	if err != nil {
		return nil, false
	}
	return append(append(slices.Clone(b[:5]), nd...), b[5+size:]...), true
}
