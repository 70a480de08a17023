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

// probe is the readiness probe of one start: GET ProbePath sent to the
// app's listener before the app is loaded. The listener has been listening
// since the runner warmed up, so the kernel queues the connection and the
// request until uvicorn serves, which then answers it first thing: the
// agent does not have to wake, dial and write once the app is ready, and
// Python does not wait for it to.
type probe struct {
	conn net.Conn
	stop func() bool
}

// sendProbe dials addr and writes the probe request. ctx bounds the whole
// exchange, reading the answer included.
func sendProbe(ctx context.Context, addr string) (*probe, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	p := &probe{conn: conn, stop: context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })}
	req := "GET " + ProbePath + " HTTP/1.1\r\nHost: " + addr + "\r\n" + ProbeHeader + ": 1\r\nConnection: close\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// answered waits for the response head. Any HTTP response, whatever its
// status (usually 404), proves the app answers. The body is left unread
// (closing the connection drops it), as draining a large page would only
// delay the cold start.
func (p *probe) answered(ctx context.Context) error {
	defer p.close()
	if _, err := http.ReadResponse(bufio.NewReader(p.conn), nil); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("read response: %w", err)
	}
	return nil
}

func (p *probe) close() {
	p.stop()
	p.conn.Close()
}
