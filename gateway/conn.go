package gateway

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// watchBufSize is how much a disconnect watch reads at once. A client that
// sends its next request while the current one is served gets these bytes
// replayed to the server; one read is enough to see that it is still there.
const watchBufSize = 4096

// watchBufs holds the read buffers of watches, which mostly read nothing.
var watchBufs = sync.Pool{New: func() any {
	b := make([]byte, watchBufSize)
	return &b
}}

// rejectWriteTimeout bounds writing the short refusal to a connection over
// the per-IP limit. The refusal fits in a new socket's send buffer, so this
// only matters for a peer that vanished.
const rejectWriteTimeout = time.Second

// aLongTimeAgo is a deadline in the past: setting it wakes a blocked Read.
var aLongTimeAgo = time.Unix(1, 0)

// ipLimit counts the client connections open from each IP address, for
// every listener the gateway serves, and caps them.
type ipLimit struct {
	max int // 0: no cap

	mu    sync.Mutex
	perIP map[netip.Addr]int
}

func newIPLimit(max int) *ipLimit { return &ipLimit{max: max, perIP: map[netip.Addr]int{}} }

// admit counts one more connection from ip, unless ip is at the cap.
func (l *ipLimit) admit(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perIP[ip] >= l.max {
		return false
	}
	l.perIP[ip]++
	return true
}

// leave counts one connection from ip out.
func (l *ipLimit) leave(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perIP[ip] <= 1 {
		delete(l.perIP, ip)
		return
	}
	l.perIP[ip]--
}

// edgeListener wraps a listener the gateway serves. It caps the
// connections from one IP address and hands out edgeConns, which the proxy
// uses to notice a client hanging up during a request.
//
// It does the per-IP cap itself instead of fasthttp's Server.MaxConnsPerIP:
// fasthttp wraps each counted connection in an unexported type, which
// would hide the edgeConn from the handler (ctx.Conn()).
type edgeListener struct {
	net.Listener
	limit *ipLimit
}

// Accept returns the next connection within the per-IP cap; connections
// over it are answered 429 and closed here. Connections without an IP
// address (in-memory pipes, Unix sockets) are not counted.
func (l *edgeListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c = rawClient(c)
		if l.limit.max <= 0 {
			return &edgeConn{Conn: c}, nil
		}
		ip, ok := remoteIP(c)
		if !ok {
			return &edgeConn{Conn: c}, nil
		}
		if l.limit.admit(ip) {
			return &edgeConn{Conn: c, limit: l.limit, ip: ip}, nil
		}
		reject(c, l.limit.max)
	}
}

// rawClient gives a client's TCP connection raw reads and writes (see
// rawIO), under the replay of a sorting listener (SplitHTTP2) if any.
func rawClient(c net.Conn) net.Conn {
	if p, ok := c.(*peekedConn); ok {
		p.Conn = rawIO(p.Conn)
		return p
	}
	return rawIO(c)
}

// remoteIP is the IP address c comes from, if it has one.
func remoteIP(c net.Conn) (netip.Addr, bool) {
	tcp, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(tcp.IP)
	return ip.Unmap(), ok
}

// reject answers a connection over the per-IP cap and closes it.
func reject(c net.Conn, limit int) {
	msg := fmt.Sprintf("Too many connections from your address (the limit is %d). Close some and retry.\n", limit)
	_ = c.SetWriteDeadline(time.Now().Add(rejectWriteTimeout))
	_, _ = fmt.Fprintf(c, "HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nRetry-After: 1\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s", len(msg), msg)
	_ = c.Close()
}

// edgeConn is one client connection. Besides counting itself out of its
// IP's cap on Close, it can watch for the client hanging up while a
// request is served (see watch).
//
// fasthttp reads a connection only between requests, so while the handler
// (or a streamed response body) runs, nothing reads it and a client that
// leaves goes unnoticed until the gateway writes to it. A watch reads the
// connection in the background meanwhile: end of stream or an error means
// the client is gone; bytes (a pipelined request) are kept and replayed to
// fasthttp's next Read. watch, unwatch and fasthttp's Reads all happen on
// the goroutine serving the connection, so a watch never runs beside a
// fasthttp Read.
type edgeConn struct {
	net.Conn
	limit *ipLimit // nil when not counted
	ip    netip.Addr

	// Written by the watch goroutine before it closes watchDone, read by
	// the serving goroutine after unwatch has received from it.
	pending []byte // bytes the watch read, for the next Read
	rerr    error  // what ended the client's side, for the next Read
	gone    bool

	watchDone chan struct{} // non-nil while a watch runs

	// mu guards closed and onClose: Close can come from fasthttp's
	// Shutdown on another goroutine.
	mu      sync.Mutex
	closed  bool
	onClose func()
}

// Read replays what a watch read, then reads the connection.
func (c *edgeConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	if c.rerr != nil {
		return 0, c.rerr
	}
	return c.Conn.Read(p)
}

// Close closes the connection, counts it out of its IP's cap and runs the
// hook set by setOnClose. It is idempotent.
func (c *edgeConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	hook := c.onClose
	c.onClose = nil
	c.mu.Unlock()
	// Count out before closing, so a client that saw this connection end
	// finds its slot free.
	if c.limit != nil {
		c.limit.leave(c.ip)
	}
	err := c.Conn.Close()
	if hook != nil {
		hook()
	}
	return err
}

// setOnClose arranges for f to run when the connection closes (at once if
// it already has). A hijacked connection whose hijack handler fasthttp
// never starts is still closed, so this is where its cleanup can hang.
func (c *edgeConn) setOnClose(f func()) {
	c.mu.Lock()
	if !c.closed {
		c.onClose = f
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	f()
}

// watch starts watching for the client hanging up; gone runs (on the
// watch goroutine) if it does. It must be called on the goroutine serving
// c, with no watch running, and be followed by unwatch before c is read
// again. It clears c's read deadline, which fasthttp set for reading the
// request and sets again before reading the next one.
func (c *edgeConn) watch(gone func()) {
	if c.rerr != nil || len(c.pending) > 0 {
		// A watch already saw the client leave or send more; reading
		// again would only lose that.
		c.watchDone = make(chan struct{})
		close(c.watchDone)
		return
	}
	_ = c.Conn.SetReadDeadline(time.Time{})
	c.watchDone = make(chan struct{})
	go c.watchRead(gone)
}

func (c *edgeConn) watchRead(gone func()) {
	defer close(c.watchDone)
	buf := watchBufs.Get().(*[]byte)
	n, err := c.Conn.Read(*buf)
	if n > 0 {
		c.pending = bytes.Clone((*buf)[:n])
	}
	watchBufs.Put(buf)
	if err == nil || isTimeout(err) { // more bytes, or unwatch
		return
	}
	c.rerr, c.gone = err, true
	if err != io.EOF {
		c.rerr = io.EOF // fasthttp reads a vanished client as end of stream
	}
	gone()
}

// unwatch ends the watch and reports whether the client hung up (gone has
// then run). It must be called on the goroutine serving c.
func (c *edgeConn) unwatch() bool {
	_ = c.Conn.SetReadDeadline(aLongTimeAgo)
	<-c.watchDone
	c.watchDone = nil
	return c.gone
}
