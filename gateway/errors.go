package gateway

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"connectrpc.com/connect"
	"github.com/valyala/fasthttp"

	"github.com/gofastapi/gofastapi/gateway/ownerlimit"
)

// ErrInvalidConfig is wrapped by every error Config.Validate and New return.
var ErrInvalidConfig = errors.New("gateway: invalid config")

// The errors below never leave the package as values: classify turns them
// into an HTTP answer, and only the operator's log sees their text.
var (
	errUnknownHost  = errors.New("gateway: unknown host")
	errAppNotFound  = errors.New("gateway: app not found")
	errRouteLookup  = errors.New("gateway: route lookup failed")
	errColdStart    = errors.New("gateway: cold start failed")
	errRunnerGone   = errors.New("gateway: runner stopped while starting")
	errUpstream     = errors.New("gateway: app upstream failed")
	errAPIUpstream  = errors.New("gateway: platform API upstream failed")
	errBadRequest   = errors.New("gateway: bad request")
	errShuttingDown = errors.New("gateway: shutting down")
	errClientGone   = errors.New("gateway: client closed the connection")
)

// answer is what the client is told about a failed request.
type answer struct {
	status     int
	retryAfter int    // seconds, sent as Retry-After; 0: none
	reason     string // a sentence the user can act on; no Go internals
}

// classify maps every error the gateway can meet to the HTTP answer the
// client gets. It is the only place that does. name is the app's slug (or
// the host for host errors); timeouts are quoted in the words of cfg.
func classify(err error, name string, cfg *Config) answer {
	app := fmt.Sprintf("App %q", name)
	var ce *connect.Error
	var over *ownerlimit.Exceeded
	switch {
	case errors.As(err, &over):
		secs := int(math.Ceil(over.Retry.Seconds()))
		return answer{fasthttp.StatusTooManyRequests, max(secs, 1),
			fmt.Sprintf("%s has had as many requests as its owner's plan allows (%d a minute). Retry in %s.",
				app, over.PerMinute, plural(max(secs, 1), "second"))}
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return answer{fasthttp.StatusRequestEntityTooLarge, 0,
			fmt.Sprintf("The request body is larger than %s, the most an app may receive. "+
				"Send a smaller body, or split a large upload into several requests.", byteSize(cfg.MaxRequestBodySize))}
	case errors.Is(err, errClientGone):
		// Logged, not seen: the client is no longer there to read it.
		return answer{fasthttp.StatusBadRequest, 0, "The client closed the connection before the app answered."}
	case errors.Is(err, errBadRequest):
		var small *fasthttp.ErrSmallBuffer
		switch {
		case errors.As(err, &small):
			return answer{fasthttp.StatusRequestHeaderFieldsTooLarge, 0, "The request headers are too large."}
		case isTimeout(err):
			return answer{fasthttp.StatusRequestTimeout, 0, "The request was not received in time."}
		}
		return answer{fasthttp.StatusBadRequest, 0, "The request is not valid HTTP/1.1."}
	case errors.Is(err, errUnknownHost):
		return answer{fasthttp.StatusNotFound, 0, fmt.Sprintf("%q is not a host this platform serves.", name)}
	case errors.Is(err, errAppNotFound):
		return answer{fasthttp.StatusNotFound, 0,
			fmt.Sprintf("There is no app named %q. Check the address, or deploy the app first.", name)}
	case errors.Is(err, errShuttingDown):
		return answer{fasthttp.StatusServiceUnavailable, 1, "The platform is restarting. Retry in a second."}
	case errors.Is(err, errRouteLookup):
		return answer{fasthttp.StatusServiceUnavailable, 1,
			fmt.Sprintf("The platform could not look up app %q right now. Retry in a second.", name)}
	case errors.Is(err, errColdStart) && errors.Is(err, context.DeadlineExceeded):
		// The gateway's own bound ran out, whatever the pool said then.
		return answer{fasthttp.StatusGatewayTimeout, 0,
			fmt.Sprintf("%s did not start within %s. Check that importing it does not block.", app, cfg.ColdStartTimeout)}
	case errors.As(err, &ce):
		return classifyClaim(ce, app)
	case errors.Is(err, errColdStart), errors.Is(err, errRunnerGone):
		return answer{fasthttp.StatusBadGateway, 0, app + " could not be started. Retry, or deploy it again."}
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return answer{fasthttp.StatusServiceUnavailable, 1,
			app + " has too many requests in flight. Retry in a second."}
	case errors.Is(err, errAPIUpstream):
		if isTimeout(err) {
			return answer{fasthttp.StatusGatewayTimeout, 0, "The platform API did not answer in time. Retry."}
		}
		return answer{fasthttp.StatusBadGateway, 0, "The platform API is not reachable right now. Retry."}
	case isTimeout(err):
		return answer{fasthttp.StatusGatewayTimeout, 0,
			fmt.Sprintf("%s did not answer within %s.", app, cfg.UpstreamTimeout)}
	}
	return answer{fasthttp.StatusBadGateway, 0,
		app + " closed the connection without answering. It may have crashed: check its logs."}
}

// classifyClaim maps the Connect error of Pool.Claim (or EnvSource.Env).
func classifyClaim(ce *connect.Error, app string) answer {
	switch ce.Code() {
	case connect.CodeResourceExhausted:
		return answer{fasthttp.StatusServiceUnavailable, 1,
			"Every runner is busy, so " + app + " cannot start right now. Retry in a second."}
	case connect.CodeUnavailable:
		return answer{fasthttp.StatusServiceUnavailable, 1,
			"The runner pool is unavailable, so " + app + " cannot start right now. Retry in a second."}
	case connect.CodeAborted:
		// Two pool managers (as in a split brain) claimed the same runner,
		// and the other's claim came first: nothing the app did.
		return answer{fasthttp.StatusServiceUnavailable, 1,
			"The runner given to " + app + " was taken by another start at the same moment. Retry in a second."}
	case connect.CodeFailedPrecondition:
		// The pool words this message for the user: it names why the app
		// did not start, typically the last line of its traceback.
		return answer{fasthttp.StatusBadGateway, 0, app + " did not start: " + claimReason(ce, "it stopped while loading") + ". Fix the error and deploy again."}
	case connect.CodeDeadlineExceeded:
		// The runner's (or the pool's) own bound ran out; it names the
		// bound ("app did not answer within 10s"), which the gateway's
		// ColdStartTimeout is not.
		return answer{fasthttp.StatusGatewayTimeout, 0,
			app + " did not start: " + claimReason(ce, "it took too long") + ". Check that importing it does not block."}
	case connect.CodeNotFound:
		return answer{fasthttp.StatusBadGateway, 0, "The deployed code of " + app + " is missing. Deploy it again."}
	}
	return answer{fasthttp.StatusBadGateway, 0, app + " could not be started. Retry, or deploy it again."}
}

// claimReason is the pool's words for why a start failed, or otherwise.
func claimReason(ce *connect.Error, otherwise string) string {
	if msg := strings.TrimSuffix(ce.Message(), "."); msg != "" {
		return msg
	}
	return otherwise
}

// isTimeout reports whether err is a deadline or I/O timeout.
func isTimeout(err error) bool {
	var te interface{ Timeout() bool } // net.Error, and in-memory pipes' errors
	return errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, fasthttp.ErrTimeout) ||
		errors.Is(err, fasthttp.ErrDialTimeout) ||
		(errors.As(err, &te) && te.Timeout())
}

// byteSize words a size in bytes for people: "10 MiB (10485760 bytes)",
// or just "1000 bytes" when it is not a whole number of KiB or MiB.
func byteSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB (%d bytes)", n>>20, n)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB (%d bytes)", n>>10, n)
	}
	return fmt.Sprintf("%d bytes", n)
}

// plural writes n and noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
