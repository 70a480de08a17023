package observe

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gofastapi/gofastapi/controlplane/logstore"
	v1 "github.com/gofastapi/gofastapi/proto/gen/gofastapi/v1"
)

func TestTraceback(t *testing.T) {
	log := func(stream, text string) logstore.Line { return logstore.Line{Stream: stream, Text: text} }
	lines := []logstore.Line{
		log("stderr", "ERROR:    [request_id=aaa] Exception in ASGI application"),
		log("stderr", "Traceback (most recent call last):"),
		log("stderr", `  File "/app/app.py", line 7, in boom`),
		log("stderr", "    return 1 / 0"),
		log("stdout", "an unrelated print"),
		log("stderr", "ZeroDivisionError: division by zero"),
		log("stderr", "INFO: something after"),
		log("stderr", "ERROR:    [request_id=bbb] Exception in ASGI application"),
		log("stderr", "Traceback (most recent call last):"),
		log("stderr", `  File "/app/app.py", line 9, in chained`),
		log("stderr", "KeyError: 'x'"),
		log("stderr", ""),
		log("stderr", "During handling of the above exception, another exception occurred:"),
		log("stderr", ""),
		log("stderr", "Traceback (most recent call last):"),
		log("stderr", `  File "/app/app.py", line 11, in chained`),
		log("stderr", "ValueError: bad"),
		log("stderr", "WARNING: next"),
	}
	tests := []struct {
		name, id string
		want     []string
	}{
		{"simple", "aaa", []string{
			"ERROR:    [request_id=aaa] Exception in ASGI application",
			"Traceback (most recent call last):",
			`  File "/app/app.py", line 7, in boom`,
			"    return 1 / 0",
			"ZeroDivisionError: division by zero",
		}},
		{"chained", "bbb", []string{
			"ERROR:    [request_id=bbb] Exception in ASGI application",
			"Traceback (most recent call last):",
			`  File "/app/app.py", line 9, in chained`,
			"KeyError: 'x'",
			"",
			"During handling of the above exception, another exception occurred:",
			"",
			"Traceback (most recent call last):",
			`  File "/app/app.py", line 11, in chained`,
			"ValueError: bad",
		}},
		{"not logged", "ccc", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, traceback(lines, tt.id)); diff != "" {
				t.Errorf("traceback (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAssess(t *testing.T) {
	now := time.Now()
	deployed := now.Add(-time.Hour)
	at := func(ago time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(-ago)) }
	tests := []struct {
		name   string
		in     healthInput
		want   v1.HealthStatus
		reason string
	}{
		{name: "never deployed", in: healthInput{}, want: v1.HealthStatus_HEALTH_STATUS_IDLE, reason: "not deployed"},
		{name: "no report", in: healthInput{deployed: true, deployedAt: deployed},
			want: v1.HealthStatus_HEALTH_STATUS_IDLE, reason: "scaled to zero"},
		{name: "started since the latest report", in: healthInput{deployed: true, deployedAt: deployed,
			report:    &v1.HealthReport{RunnerSince: at(time.Hour), UpdatedAt: at(time.Minute)},
			lastStart: &v1.ColdStart{Time: at(time.Second)}},
			want: v1.HealthStatus_HEALTH_STATUS_GREEN, reason: "serving: a runner started at"},
		{name: "started at the deploy, no report yet", in: healthInput{deployed: true, deployedAt: deployed,
			lastStart: &v1.ColdStart{Time: timestamppb.New(deployed.Add(time.Millisecond))}},
			want: v1.HealthStatus_HEALTH_STATUS_GREEN, reason: "serving: a runner started at"},
		{name: "started before the latest report, which saw no runner", in: healthInput{deployed: true, deployedAt: deployed,
			report:    &v1.HealthReport{RunnerSince: at(time.Hour), UpdatedAt: at(time.Second)},
			lastStart: &v1.ColdStart{Time: at(time.Minute)}},
			want: v1.HealthStatus_HEALTH_STATUS_IDLE, reason: "scaled to zero"},
		{name: "started before the latest deploy", in: healthInput{deployed: true, deployedAt: now.Add(-time.Second),
			lastStart: &v1.ColdStart{Time: at(time.Minute)}},
			want: v1.HealthStatus_HEALTH_STATUS_IDLE, reason: "scaled to zero"},
		{name: "serving", in: healthInput{deployed: true, deployedAt: deployed, requests5m: 10,
			report: &v1.HealthReport{RunnerUp: true, RunnerSince: at(time.Minute)}},
			want: v1.HealthStatus_HEALTH_STATUS_GREEN, reason: "no server errors"},
		{name: "crashed", in: healthInput{deployed: true, deployedAt: deployed, report: &v1.HealthReport{
			RunnerSince: at(time.Minute), Crashes: []*timestamppb.Timestamp{at(time.Second)}, CrashReason: "exit status 3"}},
			want: v1.HealthStatus_HEALTH_STATUS_RED, reason: "crashed at"},
		{name: "crashed before the latest deploy", in: healthInput{deployed: true, deployedAt: now.Add(-time.Millisecond),
			report: &v1.HealthReport{RunnerUp: true, RunnerSince: at(0), Crashes: []*timestamppb.Timestamp{at(time.Second)}}},
			want: v1.HealthStatus_HEALTH_STATUS_GREEN, reason: "serving"},
		{name: "crashed and came back", in: healthInput{deployed: true, deployedAt: deployed, report: &v1.HealthReport{
			RunnerUp: true, RunnerSince: at(time.Second), Crashes: []*timestamppb.Timestamp{at(time.Minute)}, CrashReason: "killed"}},
			want: v1.HealthStatus_HEALTH_STATUS_YELLOW, reason: "was started again"},
		{name: "failed to start", in: healthInput{deployed: true, deployedAt: deployed,
			lastStart: &v1.ColdStart{Time: at(time.Second), Error: "ImportError: no module x"}},
			want: v1.HealthStatus_HEALTH_STATUS_RED, reason: "ImportError"},
		{name: "health endpoint fails", in: healthInput{deployed: true, deployedAt: deployed, report: &v1.HealthReport{
			RunnerUp: true, RunnerSince: at(time.Minute), Probe: &v1.HealthProbe{Time: at(0), Defined: true, Status: 503}}},
			want: v1.HealthStatus_HEALTH_STATUS_RED, reason: "GET /health answered 503"},
		{name: "health endpoint ok", in: healthInput{deployed: true, deployedAt: deployed, report: &v1.HealthReport{
			RunnerUp: true, RunnerSince: at(time.Minute), Probe: &v1.HealthProbe{Time: at(0), Defined: true, Status: 200}}},
			want: v1.HealthStatus_HEALTH_STATUS_GREEN, reason: "GET /health answered 200"},
		{name: "no health endpoint", in: healthInput{deployed: true, deployedAt: deployed, report: &v1.HealthReport{
			RunnerUp: true, RunnerSince: at(time.Minute), Probe: &v1.HealthProbe{Time: at(0), Status: 404}}},
			want: v1.HealthStatus_HEALTH_STATUS_GREEN, reason: "serving"},
		{name: "some 5xx", in: healthInput{deployed: true, deployedAt: deployed, errors5m: 2, requests5m: 100,
			report: &v1.HealthReport{RunnerUp: true}},
			want: v1.HealthStatus_HEALTH_STATUS_YELLOW, reason: "2 of 100 requests"},
		{name: "mostly 5xx", in: healthInput{deployed: true, deployedAt: deployed, errors5m: 6, requests5m: 10,
			report: &v1.HealthReport{RunnerUp: true}},
			want: v1.HealthStatus_HEALTH_STATUS_RED, reason: "6 of 10 requests"},
		{name: "scaled to zero", in: healthInput{deployed: true, deployedAt: deployed,
			report: &v1.HealthReport{RunnerSince: at(time.Hour)}},
			want: v1.HealthStatus_HEALTH_STATUS_IDLE, reason: "scaled to zero"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.now = now
			got, reason := assess(tt.in)
			if got != tt.want || !strings.Contains(reason, tt.reason) {
				t.Errorf("assess = %s %q, want %s and a reason with %q", got, reason, tt.want, tt.reason)
			}
		})
	}
}
