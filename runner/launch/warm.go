package launch

import (
	"context"

	"connectrpc.com/connect"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// warm makes the control connection and runs the RPC code paths of both
// processes once, while the runner waits in the pool, so that Specialize
// pays neither for a TCP handshake nor for first-use costs (encoding,
// decoding and the handler's way in and out). It sends a Specialize the
// agent refuses before it specializes anything (no version: invalid
// argument), which leaves the runner as it was and the connection open for
// reuse. Failures are ignored: Specialize dials again and reports real
// errors.
func (r *Runner) warm(ctx context.Context) {
	req := &v1.SpecializeRequest{AppId: "warm-up", Slug: "warm-up", Entrypoint: "app.py", Env: map[string]string{"K": "V"}}
	_, _ = r.client.Specialize(ctx, connect.NewRequest(req))
}
