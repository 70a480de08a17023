//go:build !linux

package gateway

import "net"

// rawIO returns c: only Linux's gateway reads and writes sockets with raw
// system calls (see rawio_linux.go).
func rawIO(c net.Conn) net.Conn { return c }
