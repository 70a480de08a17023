package runner

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ProbeHeader marks the platform's own requests to an app: the readiness
// probe below, and the gateway's health checks of an app's GET /health.
const ProbeHeader = "X-Gofastapi-Probe"

// ProbePath is the path of the readiness probe. The runner's bootstrap
// answers a GET of it with ProbeHeader itself (204), in front of the app:
// the answer proves uvicorn serves the app, and none of the app's code
// runs for it (a GET / could have side effects the user did not ask for,
// and the app's middleware would see a request nobody sent).
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
// status (204 from the bootstrap), proves the app is served. The body is left unread
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
