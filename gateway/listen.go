package gateway

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"time"
)

// h2Preface is how every HTTP/2 connection without TLS (h2c with prior
// knowledge, as gRPC clients speak it) begins (RFC 9113 section 3.4).
var h2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// sniffTimeout bounds how long a new connection may take to send enough
// bytes to tell HTTP/2 from HTTP/1; a connection that sends nothing in
// that time is closed.
const sniffTimeout = 5 * time.Second

// SplitHTTP2 accepts connections from l and sorts them by their first
// bytes: those that begin with the HTTP/2 client preface are accepted from
// http2, all others from http1. The sorting of one connection never holds
// up another, and it ends as soon as the bytes read so far differ from the
// preface, so a short HTTP/1 request is passed on at once. Connections
// accepted from either listener replay the bytes read while sorting.
//
// The two listeners close independently: closing one makes its Accept
// return net.ErrClosed and closes the connections of its kind that arrive
// afterwards. Closing both closes l. If l's Accept fails for good, both
// listeners' Accept return that error. Addr of both is l's address.
func SplitHTTP2(l net.Listener) (http1, http2 net.Listener) {
	s := &splitter{l: l, done: make(chan struct{}), closing: make(chan struct{}), sniffing: map[net.Conn]struct{}{}}
	s.h1 = &splitListener{s: s, conns: make(chan net.Conn), closed: make(chan struct{})}
	s.h2 = &splitListener{s: s, conns: make(chan net.Conn), closed: make(chan struct{})}
	go s.acceptLoop()
	return s.h1, s.h2
}

// splitter owns l and the goroutines that sort its connections.
type splitter struct {
	l      net.Listener
	h1, h2 *splitListener

	done    chan struct{} // closed when l's Accept has failed for good
	err     error         // that failure; read only after done is closed
	closing chan struct{} // closed when both children are closed

	// mu guards closedChildren and sniffing. The connections being sorted
	// are closed when l fails, so their goroutines do not outlive it.
	mu             sync.Mutex
	closedChildren int // 0, 1 or 2
	sniffing       map[net.Conn]struct{}
}

func (s *splitter) acceptLoop() {
	var backoff time.Duration
	for {
		c, err := s.l.Accept()
		if err == nil {
			backoff = 0
			if s.track(c) {
				go s.sniff(c)
			}
			continue
		}
		// Like net/http's Serve, ride out temporary failures (EMFILE) with a
		// growing pause instead of giving up the listener.
		var ne net.Error
		if errors.As(err, &ne) && ne.Temporary() && !errors.Is(err, net.ErrClosed) {
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
				continue
			case <-s.closing:
				t.Stop()
				err = net.ErrClosed
			}
		}
		s.stop(err)
		return
	}
}

// track records c as being sorted; it is false (and closes c) once l has
// failed.
func (s *splitter) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sniffing == nil {
		c.Close()
		return false
	}
	s.sniffing[c] = struct{}{}
	return true
}

// stop records l's final error and closes the connections being sorted.
func (s *splitter) stop(err error) {
	s.mu.Lock()
	pending := s.sniffing
	s.sniffing = nil
	s.mu.Unlock()
	for c := range pending {
		c.Close()
	}
	s.err = err
	close(s.done)
	s.l.Close()
}

// sniff reads the first bytes of c and hands c to the listener for its
// protocol.
func (s *splitter) sniff(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(sniffTimeout))
	buf := make([]byte, 0, len(h2Preface))
	isH2 := false
	var err error
	for {
		var n int
		n, err = c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if !bytes.HasPrefix(h2Preface, buf) {
			break // HTTP/1 (or anything else): let that server answer it
		}
		if len(buf) == len(h2Preface) {
			isH2 = true
			break
		}
		if err != nil {
			break
		}
	}
	s.mu.Lock()
	tracked := s.sniffing != nil
	if tracked {
		delete(s.sniffing, c)
	}
	s.mu.Unlock()
	if !tracked || (err != nil && !isH2 && bytes.HasPrefix(h2Preface, buf)) {
		c.Close() // l failed, or c ended or stalled without saying anything
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	to := s.h1
	if isH2 {
		to = s.h2
	}
	to.deliver(&peekedConn{Conn: c, peeked: buf})
}

// closeChild marks one child closed and closes l when it was the last.
func (s *splitter) closeChild() {
	s.mu.Lock()
	s.closedChildren++
	last := s.closedChildren == 2
	s.mu.Unlock()
	if last {
		close(s.closing)
		s.l.Close()
	}
}

// splitListener is one of the two listeners SplitHTTP2 returns.
type splitListener struct {
	s      *splitter
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

// deliver hands c to the next Accept, or closes it if the listener is
// closed first.
func (l *splitListener) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.closed:
		c.Close()
	case <-l.s.done:
		c.Close()
	}
}

// Accept returns the next connection of this listener's protocol.
func (l *splitListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-l.s.done:
		return nil, l.s.err
	}
}

// Close stops this listener; the second of the pair to close closes the
// underlying listener. It is idempotent.
func (l *splitListener) Close() error {
	l.once.Do(func() {
		close(l.closed)
		l.s.closeChild()
	})
	return nil
}

// Addr is the underlying listener's address.
func (l *splitListener) Addr() net.Addr { return l.s.l.Addr() }

// peekedConn replays the bytes read while sorting before reading on.
type peekedConn struct {
	net.Conn
	peeked []byte
}

// Read returns the replayed bytes first, then reads from the connection.
func (c *peekedConn) Read(p []byte) (int, error) {
	if len(c.peeked) > 0 {
		n := copy(p, c.peeked)
		c.peeked = c.peeked[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
