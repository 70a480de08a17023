package observe

import (
	"fmt"
	"time"

	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

// healthInput is what an app's health is decided from.
type healthInput struct {
	now        time.Time
	deployed   bool
	deployedAt time.Time
	// report is the latest runner report; nil when there is none (no
	// request in the last 24 h).
	report *v1.HealthReport
	// lastStart is the app's latest cold start, nil if none is kept.
	lastStart *v1.ColdStart
	// errors5m and requests5m count the 5xx answers and all requests of
	// the last 5 minutes, since the latest deploy.
	errors5m, requests5m int64
}

// assess decides an app's health. Only what happened since the latest
// deploy counts: a redeploy is how an owner fixes a broken app.
//
//   - red: the runner crashed and none runs since; the latest start
//     failed; the app's own GET /health fails; or at least half of the
//     recent requests (3 or more) answered 5xx;
//   - yellow: some recent 5xx answers, or a recent crash the app came
//     back from;
//   - idle: no runner (scaled to zero, or never requested);
//   - green: a runner serves the app (or started since the latest
//     report) and none of the above.
func assess(in healthInput) (v1.HealthStatus, string) {
	if !in.deployed {
		return v1.HealthStatus_HEALTH_STATUS_IDLE, "not deployed yet"
	}
	r := in.report
	up := r.GetRunnerUp()
	since := r.GetRunnerSince().AsTime()
	var crash time.Time
	if cs := r.GetCrashes(); len(cs) > 0 {
		crash = cs[0].AsTime()
	}
	crashed := !crash.IsZero() && crash.After(in.deployedAt)
	if crashed && !up && !since.After(crash) {
		return v1.HealthStatus_HEALTH_STATUS_RED, fmt.Sprintf("the app crashed at %s (%s); the next request starts it again",
			clock(crash), r.GetCrashReason())
	}
	if s := in.lastStart; s != nil && s.GetError() != "" && s.GetTime().AsTime().After(in.deployedAt) && !up &&
		!since.After(s.GetTime().AsTime()) {
		return v1.HealthStatus_HEALTH_STATUS_RED, fmt.Sprintf("the app did not start at %s: %s", clock(s.GetTime().AsTime()), s.GetError())
	}
	if p := r.GetProbe(); up && p.GetDefined() && (p.GetError() != "" || p.GetStatus() < 200 || p.GetStatus() > 299) {
		what := fmt.Sprintf("answered %d", p.GetStatus())
		if p.GetError() != "" {
			what = p.GetError()
		}
		return v1.HealthStatus_HEALTH_STATUS_RED, fmt.Sprintf("its GET /health %s at %s", what, clock(p.GetTime().AsTime()))
	}
	if in.errors5m > 0 {
		msg := fmt.Sprintf("%d of %d requests in the last 5 minutes answered 5xx: see gofastapi errors", in.errors5m, max(in.requests5m, in.errors5m))
		if in.errors5m >= 3 && 2*in.errors5m >= in.requests5m {
			return v1.HealthStatus_HEALTH_STATUS_RED, msg
		}
		return v1.HealthStatus_HEALTH_STATUS_YELLOW, msg
	}
	if crashed && in.now.Sub(crash) < recent {
		return v1.HealthStatus_HEALTH_STATUS_YELLOW, fmt.Sprintf("the app crashed at %s (%s) and was started again",
			clock(crash), r.GetCrashReason())
	}
	if s := in.lastStart; !up && s != nil && s.GetError() == "" {
		// Gateways report every few seconds; a start since the latest
		// report (a deploy's, say) is a runner serving the app.
		if t := s.GetTime().AsTime(); t.After(r.GetUpdatedAt().AsTime()) && t.After(in.deployedAt) {
			return v1.HealthStatus_HEALTH_STATUS_GREEN, fmt.Sprintf("serving: a runner started at %s", clock(t))
		}
	}
	if !up {
		return v1.HealthStatus_HEALTH_STATUS_IDLE, "no runner: the app is scaled to zero, and the next request starts one"
	}
	if p := r.GetProbe(); p.GetDefined() {
		return v1.HealthStatus_HEALTH_STATUS_GREEN, fmt.Sprintf("serving; its GET /health answered %d at %s", p.GetStatus(), clock(p.GetTime().AsTime()))
	}
	return v1.HealthStatus_HEALTH_STATUS_GREEN, "serving, with no server errors in the last 5 minutes"
}

// clock is a time of day, in UTC, for reasons.
func clock(t time.Time) string { return t.UTC().Format("15:04:05 UTC") }
