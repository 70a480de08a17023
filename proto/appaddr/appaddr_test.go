package appaddr

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"testing"
)

func TestNetwork(t *testing.T) {
	for _, tt := range []struct{ addr, network, address string }{
		{Unix("/run/r1/app.sock"), "unix", "/run/r1/app.sock"},
		{"10.0.0.7:8000", "tcp", "10.0.0.7:8000"},
		{"[::1]:8000", "tcp", "[::1]:8000"},
	} {
		if network, address := Network(tt.addr); network != tt.network || address != tt.address {
			t.Errorf("Network(%q) = %q, %q; want %q, %q", tt.addr, network, address, tt.network, tt.address)
		}
	}
}

// TestDial reaches a listener by each form of its address.
func TestDial(t *testing.T) {
	sock, err := net.Listen("unix", filepath.Join(t.TempDir(), "app.sock"))
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for addr, l := range map[string]net.Listener{Unix(sock.Addr().String()): sock, tcp.Addr().String(): tcp} {
		go func() {
			if c, err := l.Accept(); err == nil {
				c.Write([]byte(addr))
				c.Close()
			}
		}()
		c, err := Dial(context.Background(), addr)
		if err != nil {
			t.Fatalf("Dial(%q): %v", addr, err)
		}
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(got) != addr {
			t.Errorf("Dial(%q) reached %q (%v)", addr, got, err)
		}
		l.Close()
	}
}
