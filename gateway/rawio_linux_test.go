//go:build linux && !race

package gateway

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection: the dialled
// end through rawIO, and the accepted end as it is.
func tcpPair(t *testing.T) (raw net.Conn, peer *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	raw = rawIO(c)
	if _, ok := raw.(*rawConn); !ok {
		t.Fatalf("rawIO gave a %T, want *rawConn", raw)
	}
	t.Cleanup(func() { raw.Close(); p.Close() })
	return raw, p.(*net.TCPConn)
}

func TestRawConnMovesEveryByteBothWays(t *testing.T) {
	raw, peer := tcpPair(t)
	// Far more than the sockets' buffers hold, so writes fill them and
	// wait in the poller, and reads find them empty and wait too.
	data := make([]byte, 16<<20)
	for i := range data {
		data[i] = byte(i * 7 / 3)
	}
	want := sha256.Sum256(data)

	// raw writes, the peer echoes everything back, raw reads it.
	echoed := make(chan error, 1)
	go func() {
		_, err := io.Copy(peer, io.LimitReader(peer, int64(len(data))))
		echoed <- err
	}()
	got := make(chan [32]byte, 1)
	go func() {
		h := sha256.New()
		buf := make([]byte, 3000) // odd-sized reads
		for n := 0; n < len(data); {
			m, err := raw.Read(buf)
			if err != nil {
				t.Errorf("read after %d bytes: %v", n, err)
				break
			}
			h.Write(buf[:m])
			n += m
		}
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		got <- sum
	}()
	if n, err := raw.Write(data); err != nil || n != len(data) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(data))
	}
	if err := <-echoed; err != nil {
		t.Fatal(err)
	}
	if sum := <-got; sum != want {
		t.Fatal("the bytes read back differ from those written")
	}

	// The peer hangs up: EOF, as from any net.Conn.
	peer.Close()
	if n, err := raw.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("Read after the peer closed = %d, %v; want 0, EOF", n, err)
	}
}

func TestRawConnHonoursDeadlines(t *testing.T) {
	raw, _ := tcpPair(t)

	// Nothing to read: the deadline ends the wait with a timeout error.
	raw.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := raw.Read(make([]byte, 10))
	if !isTimeout(err) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past its deadline: %v, want a timeout", err)
	}

	// A deadline moved into the past wakes a Read already waiting, which is
	// how a watch on a client connection is ended (edgeConn.unwatch).
	raw.SetReadDeadline(time.Time{})
	done := waitingRead(t, raw)
	raw.SetReadDeadline(aLongTimeAgo)
	if err := <-done; !isTimeout(err) {
		t.Fatalf("woken Read: %v, want a timeout", err)
	}

	// Close wakes a waiting Read too.
	raw.SetReadDeadline(time.Time{})
	done = waitingRead(t, raw)
	raw.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read woken by Close: %v, want net.ErrClosed", err)
	}
}

// waitingRead starts a Read of c, which has nothing to read, checks that it
// is still waiting 20 ms later, and returns the channel its error will come
// on.
func waitingRead(t *testing.T, c net.Conn) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Read returned %v with nothing to read", err)
	case <-time.After(20 * time.Millisecond):
	}
	return done
}

func TestRawConnReportsAResetAsNetConnDoes(t *testing.T) {
	raw, peer := tcpPair(t)
	// The peer closes with unread data and no linger: the kernel answers
	// with a reset.
	if _, err := raw.Write([]byte("unread")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(peer, buf); err != nil {
		t.Fatal(err)
	}
	peer.SetLinger(0)
	peer.Close()

	_, err := raw.Read(make([]byte, 10))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Read after a reset: %v, want ECONNRESET (exchange retries on it)", err)
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "read" {
		t.Fatalf("Read after a reset: %#v, want a *net.OpError for read", err)
	}
	// Writing to the reset connection fails, without the process dying of
	// SIGPIPE.
	_, err = raw.Write(bytes.Repeat([]byte("x"), 1<<20))
	if !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Write after a reset: %v, want EPIPE or ECONNRESET", err)
	}
}

// The gateway's own TCP connections, to clients and to runners, use raw
// reads and writes; in-memory ones (tests) are left alone.
func TestGatewayConnectionsUseRawIO(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()

	g := &Gateway{}
	up, err := g.runnerDial()(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	if c := <-accepted; c != nil {
		c.Close()
	}
	if _, ok := up.(*rawConn); !ok {
		t.Errorf("a runner connection is a %T, want *rawConn", up)
	}

	for _, split := range []bool{false, true} {
		front, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var l net.Listener = front
		if split {
			h1, h2 := SplitHTTP2(front)
			l = h1
			defer h2.Close()
		}
		el := &edgeListener{Listener: l, limit: newIPLimit(0)}
		cc, err := net.Dial("tcp", front.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		cc.Write([]byte("GET / HTTP/1.1\r\n")) // for SplitHTTP2 to sort
		c, err := el.Accept()
		if err != nil {
			t.Fatal(err)
		}
		inner := c.(*edgeConn).Conn
		if p, ok := inner.(*peekedConn); ok {
			inner = p.Conn
		}
		if _, ok := inner.(*rawConn); !ok {
			t.Errorf("split %v: a client connection is a %T under the edgeConn, want *rawConn", split, inner)
		}
		c.Close()
		cc.Close()
		l.Close()
	}
}
