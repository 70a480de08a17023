package launch

import (
	"context"
	"io"
	"net/http"

	"google.golang.org/protobuf/proto"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
	"github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1/gofastapiv1connect"
)

// warm makes the control connection and runs the RPC code paths of both
// processes once, while the runner waits in the pool, so that Specialize
// pays neither for a TCP handshake nor for first-use costs. It sends a
// request the agent's RunnerService refuses before calling Specialize (an
// unsupported content type: 415) and leaves the connection open for reuse.
// Failures are ignored: Specialize dials again and reports real errors.
func (r *Runner) warm(ctx context.Context) {
	_, _ = proto.Marshal(&v1.SpecializeRequest{Env: map[string]string{"K": "V"}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		"http://"+r.hs.Control+gofastapiv1connect.RunnerServiceSpecializeProcedure, http.NoBody)
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/x-gofastapi-warmup")
	resp, err := (&http.Client{Transport: r.transport}).Do(req)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}
