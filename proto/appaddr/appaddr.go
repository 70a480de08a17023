// Package appaddr is the form of an app's address, as its runner reports
// it (runner.Handshake.App, SpecializeResponse.app_addr,
// PoolServiceClaimResponse.app_addr) and as the gateway and the pool dial
// it: "unix:" and the path of a Unix socket for a runner on the platform's
// own machine (the runner agent's --app-socket), else host:port over TCP
// (a runner in a pod).
package appaddr

import (
	"context"
	"net"
	"strings"
)

// unixPrefix marks an address that is a Unix socket's path.
const unixPrefix = "unix:"

// Unix is the address of the app's Unix socket at path.
func Unix(path string) string { return unixPrefix + path }

// Network splits addr into what net.Dial takes.
func Network(addr string) (network, address string) {
	if path, ok := strings.CutPrefix(addr, unixPrefix); ok {
		return "unix", path
	}
	return "tcp", addr
}

// Dial connects to the app at addr.
func Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	network, address := Network(addr)
	return d.DialContext(ctx, network, address)
}
