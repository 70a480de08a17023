package runner

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ProbeHeader marks the one request the agent sends to confirm an app
// answers. Apps see it like any other request and may ignore it.
const ProbeHeader = "X-Gofastapi-Probe"

// ProbePath is the path of the probe: one no app is expected to define, so
// the probe runs the app's middleware and router but none of its handlers
// (a GET / could have side effects the user did not ask for).
const ProbePath = "/.well-known/gofastapi/ready"

// probe sends GET ProbePath to the app at addr and waits for the response
// head. Any HTTP response, whatever its status (usually 404), proves the app
// answers. ctx bounds the whole exchange.
func probe(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	req := "GET " + ProbePath + " HTTP/1.1\r\nHost: " + addr + "\r\n" + ProbeHeader + ": 1\r\nConnection: close\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		return err
	}
	// The head is enough; the body is left unread (closing conn drops it), as
	// draining a large page would only delay the cold start.
	if _, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("read response: %w", err)
	}
	return nil
}
