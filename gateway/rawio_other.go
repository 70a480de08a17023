//go:build !linux || race

package gateway

import "net"

// rawIO returns c: only Linux's gateway reads and writes sockets with raw
// system calls (see rawio_linux.go), and not in race-detector builds.
func rawIO(c net.Conn) net.Conn { return c }
