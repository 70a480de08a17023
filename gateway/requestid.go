package gateway

import (
	"encoding/hex"
	"math/rand/v2"
	"time"

	"github.com/valyala/fasthttp"
)

// HeaderRequestID carries the id the gateway gives each app request. The
// app reads it from this header, and the runner tags the app's log lines
// about the request with it, so an error answer can be matched with its
// traceback.
const HeaderRequestID = "X-Request-Id"

// requestIDLen is the length of a request id: 64 random bits in hex.
const requestIDLen = 16

// setRequestID writes a new random request id into id and sets it as the
// request's X-Request-Id, replacing any the client sent: the id must name
// one request, and a client could otherwise make its request pass for
// another. It allocates nothing, and its random source is per thread, so
// concurrent requests do not contend.
func setRequestID(h *fasthttp.RequestHeader, id *[requestIDLen]byte) {
	var raw [requestIDLen / 2]byte
	v := rand.Uint64()
	for i := range raw {
		raw[i] = byte(v >> (8 * i))
	}
	hex.Encode(id[:], raw[:])
	h.SetBytesV(HeaderRequestID, id[:])
}

// record passes one answered app request to the Recorder.
func (g *Gateway) record(ctx *fasthttp.RequestCtx, appID string, requestID []byte) {
	g.cfg.Recorder.Record(appID, ctx.Response.StatusCode(), time.Since(ctx.Time()),
		ctx.Method(), ctx.Request.Header.RequestURI(), requestID)
}
