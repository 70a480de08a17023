package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"github.com/valyala/fasthttp"

	"github.com/gofastapi/gofastapi/gateway/ownerlimit"
)

func TestClassify(t *testing.T) {
	cfg := &Config{MaxRequestBodySize: 1024, UpstreamTimeout: 30 * time.Second, ColdStartTimeout: 10 * time.Second}
	claim := func(code connect.Code, msg string) error {
		return fmt.Errorf("%w: demo@v1: %w", errColdStart, connect.NewError(code, errors.New(msg)))
	}
	type result struct {
		Status     int
		RetryAfter int
		Contains   string
	}
	tests := []struct {
		name string
		err  error
		want result
	}{
		{"unknown host", errUnknownHost, result{404, 0, `"demo" is not a host`}},
		{"unknown app", fmt.Errorf("%w: demo", errAppNotFound), result{404, 0, `no app named "demo"`}},
		{"route source down", fmt.Errorf("%w: demo: %w", errRouteLookup, io.EOF), result{503, 1, "Retry in a second"}},
		{"capacity", claim(connect.CodeResourceExhausted, "pool: at capacity"), result{503, 1, "Every runner is busy"}},
		{"pool unavailable", claim(connect.CodeUnavailable, "dial"), result{503, 1, "unavailable"}},
		{"runner claimed twice", claim(connect.CodeAborted, "kube: runner pod was claimed by another pool manager"), result{503, 1, "taken by another start"}},
		{"app failed to start", claim(connect.CodeFailedPrecondition, "app failed to start: ZeroDivisionError: division by zero"),
			result{502, 0, `App "demo" did not start: app failed to start: ZeroDivisionError: division by zero. Fix`}},
		{"start deadline", claim(connect.CodeDeadlineExceeded, "app did not answer within 3s"),
			result{504, 0, `App "demo" did not start: app did not answer within 3s. Check that importing it does not block.`}},
		{"bundle missing", claim(connect.CodeNotFound, "redis: nil"), result{502, 0, "deployed code"}},
		{"other claim error", claim(connect.CodeInternal, "mongo: boom"), result{502, 0, "could not be started"}},
		{"cold start context deadline", fmt.Errorf("%w: %w", errColdStart, context.DeadlineExceeded), result{504, 0, "did not start within 10s"}},
		{"cold start context deadline, as the pool put it", fmt.Errorf("%w: %w: %w", errColdStart, context.DeadlineExceeded,
			claim(connect.CodeDeadlineExceeded, "no runner became ready in time")), result{504, 0, `App "demo" did not start within 10s.`}},
		{"runner gone", errRunnerGone, result{502, 0, "could not be started"}},
		{"upstream refused", fmt.Errorf("%w: %w", errUpstream, io.ErrUnexpectedEOF), result{502, 0, "closed the connection"}},
		{"upstream timeout", fmt.Errorf("%w: %w", errUpstream, fasthttp.ErrTimeout), result{504, 0, "did not answer within 30s"}},
		{"upstream busy", fmt.Errorf("%w: %w", errUpstream, fasthttp.ErrNoFreeConns), result{503, 1, "too many requests"}},
		{"api down", fmt.Errorf("%w: %w", errAPIUpstream, io.EOF), result{502, 0, "platform API"}},
		{"body too large", fmt.Errorf("%w: %w", errBadRequest, fasthttp.ErrBodyTooLarge),
			result{413, 0, "larger than 1 KiB (1024 bytes), the most an app may receive. Send a smaller body"}},
		{"client gone", fmt.Errorf("%w: %w", errUpstream, errClientGone), result{400, 0, "client closed the connection"}},
		{"headers too large", fmt.Errorf("%w: %w", errBadRequest, &fasthttp.ErrSmallBuffer{}), result{431, 0, "headers"}},
		{"garbage", fmt.Errorf("%w: %w", errBadRequest, io.EOF), result{400, 0, "not valid"}},
		{"shutting down", errShuttingDown, result{503, 1, "restarting"}},
		{"owner's limit", &ownerlimit.Exceeded{PerMinute: 3000, Retry: 20 * time.Millisecond},
			result{429, 1, `App "demo" has had as many requests as its owner's plan allows (3000 a minute). Retry in 1 second.`}},
		{"owner's small limit", &ownerlimit.Exceeded{PerMinute: 6, Retry: 9500 * time.Millisecond}, result{429, 10, "(6 a minute). Retry in 10 seconds."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := classify(tt.err, "demo", cfg)
			got := result{a.status, a.retryAfter, tt.want.Contains}
			if !strings.Contains(a.reason, tt.want.Contains) {
				got.Contains = a.reason
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("classify(%v) (-want +got):\n%s", tt.err, diff)
			}
			for _, leak := range []string{"gateway:", "redis", "mongo", "fasthttp", "pool:"} {
				if strings.Contains(a.reason, leak) {
					t.Errorf("reason %q shows internals (%q)", a.reason, leak)
				}
			}
		})
	}
}

func TestByteSize(t *testing.T) {
	for n, want := range map[int]string{
		1000:     "1000 bytes",
		1024:     "1 KiB (1024 bytes)",
		1536:     "1536 bytes",
		10 << 20: "10 MiB (10485760 bytes)",
		3 << 10:  "3 KiB (3072 bytes)",
	} {
		if got := byteSize(n); got != want {
			t.Errorf("byteSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestPrefersJSON(t *testing.T) {
	tests := []struct {
		name   string
		accept string
		want   bool
	}{
		{"none", "", false},
		{"browser", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", false},
		{"json", "application/json", true},
		{"json upper case", "Application/JSON", true},
		{"problem json", "application/problem+json", true},
		{"json over html by q", "text/html;q=0.5, application/json", true},
		{"html over json by q", "application/json;q=0.5, text/html", false},
		{"tie json first", "application/json, text/html", true},
		{"tie html first", "text/html, application/json", false},
		{"json refused", "application/json;q=0", false},
		{"anything", "*/*", false},
		{"malformed q", "application/json;q=x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := prefersJSON([]byte(tt.accept)); got != tt.want {
				t.Errorf("prefersJSON(%q) = %v, want %v", tt.accept, got, tt.want)
			}
		})
	}
}
